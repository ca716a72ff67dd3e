"""model: the seed's pure-convolution FakeNet, the "very bad" baseline.

As published it could not run: its second Linear took 128 inputs but received 256. The head here is the
intended one, the same as model_2's (256 -> 128). Forward returns logits (see `models.probabilities`).
"""
import torch.nn.functional as F
from torch import nn


class FakeNet(nn.Module):
    def __init__(self, num_outputs: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 5, stride=2, padding=1), nn.ReLU(),     # 32 -> 15
            nn.Conv2d(96, 256, 3, stride=2), nn.ReLU(),              # 15 -> 7
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 96, 3, padding=1),
            nn.MaxPool2d(3, stride=2), nn.ReLU(),                    # 7 -> 3
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(96 * 3 * 3, 256), nn.ReLU(), nn.BatchNorm1d(256), nn.Dropout(0.5),
            nn.Linear(256, 128), nn.ReLU(),  # the seed's Linear(128, 128) here crashed
            nn.Linear(128, num_outputs),
        )

    def forward(self, x):
        x = self.features(x)
        if x.shape[-2:] != (3, 3):  # a larger image: its map average-pooled to the 3x3 the head flattens
            x = F.adaptive_avg_pool2d(x, 3)
        return self.head(x)

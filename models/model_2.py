"""model_2: the seed's FakeNet2, layer for layer (1,454,081 parameters).

Three conv blocks (conv 3x3 -> ReLU -> BatchNorm -> max-pool; the third block has no pool, as in the seed),
then an MLP head; at another image size than 32, the last map is pooled to the 4x4 the head was built for. The seed
ended in a Sigmoid; here forward returns logits and the probability is taken in one place (`models.probabilities`),
so BCE-with-logits can be used for numerical stability.
"""
import torch.nn.functional as F
from torch import nn


class FakeNet2(nn.Module):
    def __init__(self, num_outputs: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),      # 32 -> 30 -> 15
            nn.Conv2d(64, 128, 3), nn.ReLU(), nn.BatchNorm2d(128), nn.MaxPool2d(2),   # 15 -> 13 -> 6
            nn.Conv2d(128, 256, 3), nn.ReLU(), nn.BatchNorm2d(256),                   # 6 -> 4
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * 4 * 4, 256), nn.ReLU(), nn.BatchNorm1d(256), nn.Dropout(0.5),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, num_outputs),
        )

    def forward(self, x):
        x = self.features(x)
        if x.shape[-2:] != (4, 4):  # a larger image: its map average-pooled to the 4x4 the head flattens
            x = F.adaptive_avg_pool2d(x, 4)  # (not a layer: at 32 px the seed's network, and its export, unchanged)
        return self.head(x)

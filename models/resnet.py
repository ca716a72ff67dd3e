"""resnet18: the CIFAR form of ResNet-18 (He et al., 2016), for 32x32 images.

A 3x3 stem at full resolution (no stride, no max-pool: the generator's artefacts sit in the finest pixels),
then four stages of two basic blocks (two 3x3 conv-BN, identity or 1x1-projection skip), widths 64-512 at
32, 16, 8 and 4 px, global average pooling and one linear layer: 11.2M parameters, 556 MMACs per image,
13x fullres_cnn_x2's. Sized for a GPU, to test whether residual depth beats the VGG-style family's width there.
"""
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    def __init__(self, num_outputs: int = 1, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)):
        super().__init__()
        layers = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        c_in = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(c_in, width, stride=2 if i > 0 and j == 0 else 1))
                c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_outputs))

    def forward(self, x):
        return self.head(self.features(x))

"""fullres_cnn: a small VGG-style network that looks at full resolution before it pools.

Generator artefacts live in the finest pixels (checkerboard up-sampling, over-smooth textures, noise that is
too regular), so the first stage keeps all 32x32 positions for two 3x3 convolutions, where model_2 pools after
its first convolution. Then three more stages double the width as they halve the resolution, every
convolution followed by BatchNorm and ReLU, and global average pooling feeds one linear layer (no 4096-wide
dense layer as in model_2). widths (16, 32, 64, 128): 146k parameters and 11 MMACs per image, a quarter of
model_2's FLOPs, and the same accuracy for the same number of epochs on 30k images (see README).

`pool_first`: the convolution before each pooling is max-pooled before its BatchNorm and ReLU (airbench's
order), so those two run on a quarter of the positions. On 2 CPU cores a training step of these networks is
memory-bound, not compute-bound (fullres_cnn_x2 in bf16: convolutions 38% of the step, BatchNorm 26%, ReLU
15%, max-pooling 10%), so this buys about a fifth more images a second for the same MACs and parameters.
"""
from torch import nn

BASE_WIDTHS = (16, 32, 64, 128)  # fullres_cnn's; the wider variants scale all four


def conv_bn_relu(c_in, c_out, pool=False):
    """3x3 conv, BatchNorm, ReLU; with `pool`, a 2x2 max-pool between the conv and the BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), *([nn.MaxPool2d(2)] if pool else []),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FullResCNN(nn.Module):
    def __init__(self, num_outputs: int = 1, widths=BASE_WIDTHS, pool_first: bool = False):
        super().__init__()
        a, b, c, d = widths

        def down(c_in, c_out):  # the stage's last convolution and the halving of the resolution
            if pool_first:
                return [conv_bn_relu(c_in, c_out, pool=True)]
            return [conv_bn_relu(c_in, c_out), nn.MaxPool2d(2)]
        self.features = nn.Sequential(
            conv_bn_relu(3, a), *down(a, a),   # 32x32: the finest pixels
            conv_bn_relu(a, b), *down(b, b),   # 16x16
            conv_bn_relu(b, c), *down(c, c),   # 8x8
            conv_bn_relu(c, d),                # 4x4
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(d, num_outputs))

    def forward(self, x):
        return self.head(self.features(x))

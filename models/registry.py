"""The registry of networks: `MODELS` (name -> constructor taking `num_outputs`) and `build_model`.

Every network takes normalised float images (N, 3, S, S), S = 32 unless a run chose another, and returns logits:
one logit for two classes (the probability of the positive class, BCE-with-logits) or one per class for more
(softmax cross-entropy).
"""
from torch import nn

from models.edit_map import EditMapNet
from models.fullres_cnn import BASE_WIDTHS, FullResCNN
from models.model import FakeNet
from models.model_2 import FakeNet2
from models.resnet import ResNet
from models.two_part import TwoPartDetector


def _fullres(scale: float, pool_first: bool = False):
    """fullres_cnn at `scale` times its widths."""
    widths = tuple(int(scale * w) for w in BASE_WIDTHS)
    return lambda num_outputs=1: FullResCNN(num_outputs, widths=widths, pool_first=pool_first)


MODELS = {
    "model_2": FakeNet2,         # the seed's conv-BN-pool network
    "model": FakeNet,            # the seed's pure-convolution baseline
    "fullres_cnn": FullResCNN,   # full-resolution first stage, global pooling: a quarter of model_2's FLOPs
    "fullres_cnn_wide": _fullres(1.5),
    "fullres_cnn_x2": _fullres(2),
    # sized for a GPU (bench/gpu.py): each doubling of the width bought 0.2-0.4 points there up to x8, more
    # epochs did not
    "fullres_cnn_x4": _fullres(4),
    "fullres_cnn_x8": _fullres(8),
    # BatchNorm and ReLU after each max-pooling, not before: same MACs, ~1.2x the CPU training speed for x2,
    # 1.15x the GPU's for x8
    "fullres_cnn_x2_pool_first": _fullres(2, pool_first=True),
    "fullres_cnn_x8_pool_first": _fullres(8, pool_first=True),
    "fullres_cnn_x16_pool_first": _fullres(16, pool_first=True),
    "resnet18": ResNet,  # the CIFAR ResNet-18, sized for a GPU: residual depth against fullres_cnn_x8's width
    # class logits and a per-pixel edit map (models/edit_map.py); plain, or with noise-residual input channels
    "edit_map": EditMapNet,
    "edit_map_srm": lambda num_outputs=1: EditMapNet(num_outputs, residual="srm"),
    "edit_map_bayar": lambda num_outputs=1: EditMapNet(num_outputs, residual="bayar"),
    # a quarter of edit_map_srm's widths: a localiser for images at their own size, where every pixel is
    # computed at full resolution (a 12 MP photo is 12 million of them)
    "edit_map_lite": lambda num_outputs=1: EditMapNet(num_outputs, widths=(8, 16, 32, 64), decoder_width=8,
                                                      residual="srm"),
    # the SRM one whose decoder also sees each region's deviation from the rest of its image (a local anomaly)
    "edit_map_srm_anomaly": lambda num_outputs=1: EditMapNet(num_outputs, residual="srm", anomaly=True),
    # the default detector: P(FAKE) from the robust real-vs-fake network, EDITED from a separate localiser's map
    # (models/two_part.py); built by joining two trained runs (shipping/two_part.py), never trained as one
    "two_part": lambda num_outputs=1: TwoPartDetector(_fullres(2, pool_first=True)(num_outputs),
                                                      EditMapNet(3, residual="srm")),
}


def num_outputs_for(num_classes: int) -> int:
    return 1 if num_classes == 2 else num_classes


def build_model(name: str, num_classes: int = 2) -> nn.Module:
    """A bare network by registry name, with the right number of outputs for `num_classes`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_outputs=num_outputs_for(num_classes))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""The degradations a detector meets in the wild, in one table read by both of their uses: robust-training
augmentation of whole batches (`robust_augment`, from data.batches) and the fixed perturbed test copies of the
robustness table (`TEST_COPIES`, written by data.perturbed). Each works on uint8 (N, 3, H, W) tensors.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF


def jpeg(x, quality):
    """Encode and decode as JPEG at `quality` (libjpeg, through torchvision; CPU)."""
    return TF.jpeg(x.cpu(), int(quality)).to(x.device)


def down_up(x, size):
    """Down to size x size with antialiasing, back up bilinearly: what a thumbnail or a resized upload loses."""
    h, w = x.shape[-2:]
    size = int(size)
    small = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def blur(x, sigma):
    return TF.gaussian_blur(x, kernel_size=[3, 3], sigma=[float(sigma)] * 2)


def noise(x, std, gen=None):
    n = torch.randn(x.shape, generator=gen).to(x.device) * std
    return (x.float() + n).round().clamp(0, 255).to(torch.uint8)


def mirror(x, _strength=None):
    return x.flip(-1)


@dataclass(frozen=True)
class Degradation:
    about: str                    # what it does at a strength, e.g. "re-saved as JPEG quality {}"
    apply: Callable               # (uint8 images, strength, generator) -> uint8 images
    train_range: Optional[tuple] = None  # (low, high) strengths drawn by robust training; None: not trained on
    integer: bool = False         # strengths are whole numbers (JPEG quality, pixels)

    def describe(self, strength) -> str:
        return self.about.format(f"{strength:g}" if strength is not None else "")


DEGRADATIONS = {
    # quality 50-95 in training; the shipped test JPEGs already carry compression
    "jpeg": Degradation("re-saved as JPEG quality {}", lambda x, s, g: jpeg(x, s), (50, 95), integer=True),
    # 16-22 px in training: sizes near 32 barely change an image, and 16-22 scored better than 16-28 on both
    # clean and resized validation images (docs/experiments.md)
    "resize": Degradation("down to {0}x{0} and back up", lambda x, s, g: down_up(x, s), (16, 22), integer=True),
    "blur": Degradation("Gaussian blur, sigma {}", lambda x, s, g: blur(x, s), (0.3, 1.0)),
    "noise": Degradation("Gaussian noise, std {} levels", lambda x, s, g: noise(x, s, g)),
    "flip": Degradation("mirrored left-right", lambda x, s, g: mirror(x)),
}

# the robustness table's fixed copies of a split: <split>-<name> = one degradation at one strength
TEST_COPIES = {
    "jpeg75": ("jpeg", 75),
    "jpeg50": ("jpeg", 50),
    "resize": ("resize", 16),
    "blur": ("blur", 0.8),
    "noise": ("noise", 8.0),
    "flip": ("flip", None),
}


def describe_copy(name: str) -> str:
    kind, strength = TEST_COPIES[name]
    return DEGRADATIONS[kind].describe(strength)


def degrade_copy(name: str, x, gen=None):
    """The test copy `name`'s degradation applied to uint8 images x."""
    kind, strength = TEST_COPIES[name]
    return DEGRADATIONS[kind].apply(x, strength, gen)


def robust_augment(x, gen, p: float):
    """Each degradation with a training range hits a random share p of the batch, at one strength per batch
    and kind drawn from that range (so each is a single batched call)."""
    n = x.shape[0]
    for kind, d in DEGRADATIONS.items():
        if d.train_range is None:
            continue
        hit = torch.rand(n, generator=gen) < p
        if not hit.any():
            continue
        idx = hit.nonzero().squeeze(1).to(x.device)
        lo, hi = d.train_range
        u = float(torch.rand((), generator=gen))
        strength = lo + round((hi - lo) * u) if d.integer else lo + (hi - lo) * u
        x = x.index_copy(0, idx, d.apply(x[idx], strength, gen))
    return x

"""The degradations a detector meets in the wild (JPEG re-saving, down/up resizing, blur, noise, mirroring),
on uint8 (N, 3, H, W) tensors. Used twice: as random robust-training augmentation of whole batches
(`robust_augment`, from data.batches), and as fixed perturbed copies of a split for the robustness table
(`build_perturbed_split`: test-jpeg75, test-resize, ...; made by prepare.py --perturb or on first use).
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

SEED = 2025


def jpeg(x, quality: int):
    """Encode and decode as JPEG at `quality` (libjpeg, through torchvision; CPU)."""
    return TF.jpeg(x.cpu(), int(quality)).to(x.device)


def down_up(x, size: int):
    """Down to size x size with antialiasing, back up bilinearly: what a thumbnail or a resized upload loses."""
    h, w = x.shape[-2:]
    small = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def blur(x, sigma: float):
    return TF.gaussian_blur(x, kernel_size=[3, 3], sigma=[float(sigma)] * 2)


def noise(x, std: float, gen=None):
    n = torch.randn(x.shape, generator=gen).to(x.device) * std
    return (x.float() + n).round().clamp(0, 255).to(torch.uint8)


# name -> (what it does, function of (uint8 images, generator)); the JPEG sets are written as JPEG files at
# that quality, the others as lossless PNG, so each set carries exactly one degradation
PERTURBATIONS = {
    "jpeg75": ("re-saved as JPEG quality 75", lambda x, g: jpeg(x, 75)),
    "jpeg50": ("re-saved as JPEG quality 50", lambda x, g: jpeg(x, 50)),
    "resize": ("down to 16x16 and back up", lambda x, g: down_up(x, 16)),
    "blur": ("Gaussian blur, sigma 0.8", lambda x, g: blur(x, 0.8)),
    "noise": ("Gaussian noise, std 8 levels", lambda x, g: noise(x, 8.0, g)),
    "flip": ("mirrored left-right", lambda x, g: x.flip(-1)),
}


def robust_augment(x, gen, p: float):
    """Each of JPEG re-saving (quality 50-95), down/up resizing (to 16-22 px) and blur (sigma 0.3-1.0) hits a
    random share p of the batch; one parameter per batch and kind keeps each a single batched call. Resizing
    stops at 22 px: sizes near 32 barely change an image, and 16-22 scored better than 16-28 on both clean
    and resized validation images (README, robustness)."""
    n = x.shape[0]
    for kind in ("jpeg", "resize", "blur"):
        hit = torch.rand(n, generator=gen) < p
        if not hit.any():
            continue
        idx = hit.nonzero().squeeze(1).to(x.device)
        u = float(torch.rand((), generator=gen))
        if kind == "jpeg":
            changed = jpeg(x[idx], 50 + round(45 * u))
        elif kind == "resize":
            changed = down_up(x[idx], 16 + round(6 * u))
        else:
            changed = blur(x[idx], 0.3 + 0.7 * u)
        x = x.index_copy(0, idx, changed)
    return x


def perturbed_name(base: str, perturbation: str) -> str:
    return f"{base}-{perturbation}"


def build_perturbed_split(data_root, name: str, verbose=True) -> bool:
    """Write split `name` (= <base>-<perturbation>, e.g. test-jpeg75) from the split <base> under `data_root`
    when it is missing; returns whether `name` is such a split and exists now."""
    from .cache import load_folder
    root = Path(data_root)
    base, _, kind = name.rpartition("-")
    if kind not in PERTURBATIONS or not base or not (root / base).is_dir():
        return False
    target = root / name
    if target.exists():
        return True
    what, fn = PERTURBATIONS[kind]
    folder = load_folder(root / base, verbose=False)
    if verbose:
        print(f"writing {name}: {len(folder.labels)} images of {base}, {what} ...", file=sys.stderr)
    gen = torch.Generator().manual_seed(SEED)
    with tempfile.TemporaryDirectory(dir=root, prefix=".perturb-") as tmp:
        stage = Path(tmp) / name
        for cls in folder.classes:
            (stage / cls).mkdir(parents=True)
        used = set()
        for start in range(0, len(folder.labels), 2048):
            images = torch.from_numpy(np.ascontiguousarray(folder.images[start:start + 2048]))
            out = images if kind.startswith("jpeg") else fn(images, gen)
            for i, array in enumerate(out.permute(0, 2, 3, 1).numpy()):
                k = start + i
                stem = Path(folder.files[k]).stem
                stem = stem if (folder.labels[k], stem) not in used else f"{stem}-{k}"  # a.jpg beside a.png
                used.add((folder.labels[k], stem))
                cls = folder.classes[folder.labels[k]]
                if kind.startswith("jpeg"):
                    Image.fromarray(array).save(stage / cls / f"{stem}.jpg", "JPEG", quality=int(kind[4:]))
                else:
                    Image.fromarray(array).save(stage / cls / f"{stem}.png")
        os.replace(stage, target)  # the split appears whole or not at all
    return True

"""Perturbed copies of a split for the robustness table: <split>-jpeg75, -jpeg50, -resize, -blur, -noise,
-flip (data.degradations.TEST_COPIES). Written by prepare.py (of `test`, and of any split with --perturb);
the JPEG copies as JPEG files at that quality, the others as lossless PNG, so each carries one degradation.
Each copy's manifest.json records the code that made it, and a changed recipe rebuilds it.
"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import degradations
from .cache import load_folder
from .folders import code_fingerprint, is_fresh, staged_folder, write_manifest
from .sources import DataError, missing_split_message

SEED = 2025


def perturbed_name(base: str, copy: str) -> str:
    return f"{base}-{copy}"


def _fingerprint(copy: str) -> str:
    return code_fingerprint(degradations, sys.modules[__name__], seed=SEED, copy=copy)


def build_perturbed_split(data_root, base: str, copy: str, verbose=True) -> Path:
    """Write <base>-<copy> under `data_root` from the split `base` unless a fresh one is there; -> its path."""
    root = Path(data_root)
    target = root / perturbed_name(base, copy)
    fingerprint = _fingerprint(copy)
    if is_fresh(target, fingerprint):
        return target
    folder = load_folder(root / base, verbose=False)
    if verbose:
        print(f"  {target.name}: {len(folder.labels)} images of {base}, {degradations.describe_copy(copy)}"
              + (" (rebuilt: the recipe changed)" if target.exists() else ""), file=sys.stderr)
    gen = torch.Generator().manual_seed(SEED)
    quality = degradations.TEST_COPIES[copy][1] if copy.startswith("jpeg") else None
    with staged_folder(target, replace=True) as stage:
        for cls in folder.classes:
            (stage / cls).mkdir(parents=True)
        used = set()
        for start in range(0, len(folder.labels), 2048):
            images = torch.from_numpy(np.ascontiguousarray(folder.images[start:start + 2048]))
            # the JPEG copies are made by the file's own encoding, at that quality
            out = images if quality else degradations.degrade_copy(copy, images, gen)
            for i, array in enumerate(out.permute(0, 2, 3, 1).numpy()):
                k = start + i
                stem = Path(folder.files[k]).stem
                stem = stem if (folder.labels[k], stem) not in used else f"{stem}-{k}"  # a.jpg beside a.png
                used.add((folder.labels[k], stem))
                cls = folder.classes[folder.labels[k]]
                if quality:
                    Image.fromarray(array).save(stage / cls / f"{stem}.jpg", "JPEG", quality=int(quality))
                else:
                    Image.fromarray(array).save(stage / cls / f"{stem}.png")
        write_manifest(stage, fingerprint, base=base, perturbation=degradations.describe_copy(copy))
    return target


def build_perturbed_splits(data_root, base: str, verbose=True) -> list:
    """Every test copy of `base` (a split under `data_root`); -> their paths."""
    if not (Path(data_root) / base).is_dir():
        raise DataError(missing_split_message(base, data_root))
    return [build_perturbed_split(data_root, base, copy, verbose) for copy in degradations.TEST_COPIES]

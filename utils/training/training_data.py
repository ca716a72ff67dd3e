"""The data a training run sees: the training part of a folder (gathered into RAM or onto the GPU, or read from
the cache a batch at a time when it is larger than IN_MEMORY_BYTES) and its seeded validation part, with the
per-channel statistics the model normalises by."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data import DataError, load_folder, resolve_split
from data.batches import training_split
from data.derived import edit_masks
from data.other_photos import resolve_photos
from data.rows import DiskRows
from data.synthetic_edits import edit_classes_from, kinds_from
from utils import distributed


@dataclass
class TrainingData:
    """The training part (in RAM, on the GPU or on disk) and the seeded validation part of a training folder."""
    root: Path
    classes: list
    train_images: torch.Tensor  # or data.rows.DiskRows: a split larger than IN_MEMORY_BYTES
    train_labels: np.ndarray
    val_images: torch.Tensor
    val_labels: np.ndarray
    mean: list
    std: list
    train_masks: torch.Tensor = None  # (N, H, W) bool: the shipped EDITED images' edited pixels (None: no EDITED)
    val_masks: torch.Tensor = None    # the validation images' (synthetic edits included)


IN_MEMORY_BYTES = 2 * 2 ** 30  # a training part larger than this (26,000 images at 160 px) stays on disk


def channel_stats(images, chunk_bytes=32 * 2 ** 20):
    """Per-channel mean and std of uint8 images (N, 3, H, W), on the 0..1 scale: from each channel's histogram
    of the 256 levels (exact, and a chunk at a time, so a split on disk is never read whole)."""
    counts = torch.zeros(3, 256, dtype=torch.int64)
    chunk = max(1, chunk_bytes // max(1, int(np.prod(images.shape[1:]))))
    for s in range(0, len(images), chunk):
        x = torch.as_tensor(np.asarray(images[s:s + chunk]))
        for c in range(3):
            counts[c] += torch.bincount(x[:, c].reshape(-1), minlength=256)
    counts = counts.double().numpy()
    levels = np.arange(256) / 255.0
    mean = counts @ levels / counts.sum(1)
    std = np.sqrt(np.maximum(counts @ levels ** 2 / counts.sum(1) - mean ** 2, 1e-12))
    return mean.tolist(), std.tolist()


def load_training_data(config, device, verbose) -> TrainingData:
    with distributed.main_first():  # rank 0 builds the cache, the others memory-map it
        folder = load_folder(resolve_split(config.train_path), verbose=verbose, image_size=config.image_size,
                             resize=config.resize)
    if len(folder.classes) < 2 and not config.synthetic_edits:
        raise DataError(f"{folder.root}: training needs at least two class folders, found {folder.classes}")
    if config.synthetic_edits and "REAL" not in folder.classes:
        raise DataError(f"{folder.root}: --synthetic-edits edits REAL photos, and there is no REAL class folder")
    masks = edit_masks(folder)[0] if "EDITED" in folder.classes else None
    split = training_split(folder, config.val_fraction, config.seed, config.synthetic_edits,
                           kinds_from(config.edit_kinds), config.max_train_images, masks, config.robust,
                           edit_classes_from(config.edit_classes), config.max_val_images,
                           config.edits_label_neutral, config.own_edits_repeat)
    if len(split.val_labels) == 0:
        raise DataError("the validation split is empty: use a val_fraction above 0 with at least 2 images a class")
    # Gathered once into RAM when it fits: random access into the training part is then a plain tensor index
    train_images = folder.images.subset(split.train_idx)
    if train_images.nbytes <= IN_MEMORY_BYTES:
        train_images = torch.from_numpy(train_images[:])
    train_labels = split.train_labels
    train_masks = None if masks is None else torch.from_numpy(masks[split.train_idx])
    if config.other_photos:
        train_images, train_labels, train_masks = with_other_photos(config, split.classes, train_images, train_labels,
                                                                    train_masks, verbose)
    mean, std = channel_stats(train_images)
    if device.type == "cuda" and not isinstance(train_images, DiskRows):  # every batch is then gathered and
        # augmented on the GPU, no host copies
        train_images = train_images.to(device)
        train_masks = None if train_masks is None else train_masks.to(device)
    return TrainingData(folder.root, split.classes, train_images, train_labels, split.val_images,
                        split.val_labels, mean, std, train_masks, split.val_masks)


def with_other_photos(config, classes, images, labels, masks, verbose):
    """The training part with the photographs of `config.other_photos` appended: REAL, nothing edited. -> (images,
    labels, masks)."""
    if isinstance(images, DiskRows):
        raise DataError(f"--other-photos {config.other_photos}: the training part is too large to hold in memory, "
                        "and the photographs are added to it there")
    if "REAL" not in classes:
        raise DataError(f"--other-photos {config.other_photos}: the photographs join the REAL class, and the training "
                        f"folder's classes are {classes}")
    where = resolve_photos(config.other_photos)
    with distributed.main_first():
        photos = load_folder(where, verbose=verbose, image_size=config.image_size, resize=config.resize)
    if photos.classes != ["REAL"]:
        raise DataError(f"{photos.root}: --other-photos takes a folder of unedited photographs in REAL/ alone, found "
                        f"class folders {photos.classes}")
    extra = torch.from_numpy(photos.images[:])
    labels = np.concatenate([labels, np.full(len(extra), classes.index("REAL"), dtype=labels.dtype)])
    if masks is not None:
        masks = torch.cat([masks, torch.zeros(len(extra), *masks.shape[1:], dtype=masks.dtype)])
    return torch.cat([images, extra]), labels, masks

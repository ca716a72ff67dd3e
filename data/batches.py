"""Batches drawn from a cached uint8 tensor: seeded shuffling and augmentation on whole batches.

Images stay uint8 until the model (which normalises them itself), so a batch costs one gather and a few
tensor ops; flips, pad-and-crop and the seed's sharpness jitter run on the batch, on whatever device it is on.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .degradations import CIFAKE_JPEG_QUALITY, jpeg, robust_augment
from .lazy import TF
from .sources import DataError
from .synthetic_edits import KINDS, edit_some, with_edited_class

VAL_EDIT_SEED = 7919  # the validation part's synthetic edits: fixed, so every epoch and every reader sees the same


def split_train_val(labels, val_fraction: float, seed: int):
    """Seeded stratified split -> (train indices, validation indices), each sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if val_fraction > 0 and len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)  # every class in both parts
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def keep_edits_with_sources(folder, train_idx, val_idx):
    """Move to validation every REAL photo of the training part whose edited version (an EDITED image of the
    same file name) is in validation, and every EDITED image whose source is: no photo is seen in training
    while its edited version (or itself) judges the epochs. REAL and FAKE share file names, so only REAL and
    EDITED are paired. -> (train indices, validation indices)."""
    classes = list(folder.classes)
    if not {"REAL", "EDITED"} <= set(classes):
        return train_idx, val_idx
    paired = np.isin(np.asarray(folder.labels), [classes.index("REAL"), classes.index("EDITED")])
    names = np.array([Path(f).name for f in folder.files])
    val_names = set(names[val_idx[paired[val_idx]]])
    move = np.array([paired[i] and names[i] in val_names for i in train_idx], dtype=bool)
    return train_idx[~move], np.sort(np.concatenate([val_idx, train_idx[move]]))


def label_edits_as_sources(classes, labels):
    """-> (classes without EDITED, labels with every EDITED image counted as REAL, the class of its source)."""
    kept = [c for c in classes if c != "EDITED"]
    remap = np.array([kept.index("REAL" if c == "EDITED" else c) for c in classes])
    return kept, remap[np.asarray(labels)]


@dataclass
class Split:
    """What a run trains and validates on: its classes, the training part's indices into the folder and their
    labels, and the validation part as tensors (with its synthetic edits, if any) and the masks of the edited
    pixels of each validation image (all False where nothing was edited or the edit is unknown)."""
    classes: list
    train_idx: np.ndarray
    train_labels: np.ndarray
    val_images: torch.Tensor
    val_labels: np.ndarray
    val_masks: torch.Tensor
    val_idx: np.ndarray = None  # the validation images' indices into the folder


def training_split(folder, val_fraction, seed, synthetic_edits=0.0, edit_kinds=KINDS, max_train_images=0,
                   masks=None, robust=0.0, edit_classes=("REAL",), max_val_images=0, label_neutral=False,
                   own_edits_repeat=1) -> Split:
    """The one definition of what a run trains and validates on, for training and for whoever re-reads a
    checkpoint's validation images. With `synthetic_edits`, EDITED joins the classes (if the folder lacks it)
    and that share of the validation part's images of `edit_classes` (REAL) is edited once, with a fixed seed (training
    batches edit theirs on the fly). `masks`: the folder's edit masks (N, H, W) bool, if known
    (data.derived.edit_masks). With `robust` (a run trained under label-neutral changes), every validation image is then
    saved at CIFAKE's JPEG quality, as the edited test splits are. `max_val_images`: validate on a seeded sample of that
    many of the validation part (a short run's validation decides little: its time belongs to training).
    `label_neutral`: edits do not change a class (a real-vs-fake run): the folder's EDITED images count as REAL,
    the class of the photos they were made from, and synthetic edits keep their image's class. The parts are
    drawn before that, so they are the same images as an edit run's on the same folder and seed.
    `own_edits_repeat`: each of the folder's own EDITED images of the training part (after `max_train_images`)
    appears this many times in it (the user's edits, a few thousand among the synthetic ones drawn on every batch;
    with `label_neutral`, as REAL)."""
    classes, labels = list(folder.classes), np.asarray(folder.labels)
    if synthetic_edits and "EDITED" not in classes and not label_neutral:
        classes, remap = with_edited_class(classes)
        labels = remap.numpy()[labels]
    train_idx, val_idx = keep_edits_with_sources(folder, *split_train_val(labels, val_fraction, seed))
    if label_neutral and "EDITED" in classes:
        classes, labels = label_edits_as_sources(classes, labels)
    if max_train_images and max_train_images < len(train_idx):
        rng = np.random.default_rng(seed + 1)
        train_idx = np.sort(rng.choice(train_idx, max_train_images, replace=False))
    if own_edits_repeat > 1:
        if "EDITED" not in folder.classes:
            raise DataError(f"{folder.root}: own_edits_repeat {own_edits_repeat} repeats the folder's EDITED images, "
                             "and it has none")
        own = train_idx[np.asarray(folder.labels)[train_idx] == folder.classes.index("EDITED")]
        train_idx = np.sort(np.concatenate([train_idx, np.repeat(own, own_edits_repeat - 1)]))
    if max_val_images and max_val_images < len(val_idx):
        rng = np.random.default_rng(seed + 2)
        val_idx = np.sort(rng.choice(val_idx, max_val_images, replace=False))
    val_images = torch.from_numpy(folder.images[val_idx])
    val_labels = labels[val_idx]
    val_masks = (torch.from_numpy(np.asarray(masks)[val_idx]) if masks is not None
                 else torch.zeros(len(val_idx), *val_images.shape[2:], dtype=torch.bool))
    if synthetic_edits:
        gen = torch.Generator().manual_seed(seed * 100_003 + VAL_EDIT_SEED)
        val_images, val_labels, val_masks = edit_some(val_images, val_labels, classes, synthetic_edits, gen,
                                                      edit_kinds, val_masks, edit_classes)
        val_labels = val_labels.numpy()
        if robust:  # a run trained under label-neutral changes, CIFAKE's JPEG 75 among them, validates so too:
            # every image saved as CIFAKE saves its files, as the edited test splits are, so an edit carries the
            # same encoding as its surroundings (near a no-op on the unedited ones)
            val_images = jpeg(val_images, CIFAKE_JPEG_QUALITY)
    return Split(classes, train_idx, labels[train_idx], val_images, val_labels, val_masks, val_idx)


def random_windows(x, masks, size, gen):
    """A random size x size window of each image (and its mask), each at its own place: the images' own pixels,
    never resampled. -> (windows, their masks or None)."""
    n, _, h, w = x.shape
    if size >= h and size >= w:
        return x, masks
    top = torch.randint(0, h - size + 1, (n,), generator=gen).tolist()
    left = torch.randint(0, w - size + 1, (n,), generator=gen).tolist()
    places = list(zip(top, left))
    x = torch.stack([x[i, :, t:t + size, l:l + size] for i, (t, l) in enumerate(places)])
    if masks is not None:
        masks = torch.stack([masks[i, t:t + size, l:l + size] for i, (t, l) in enumerate(places)])
    return x, masks


class Batches:
    """Iterate (uint8 images, int64 labels) batches, or with `with_masks` (uint8 images, int64 labels, bool
    (N, H, W) edit masks): the masks of the images' own edits (`masks`, e.g. the shipped EDITED ones) and of
    the synthetic ones, moved by the same flips and crops as the images. With `window` > 0 each image is first
    cut to a random window of that side (before any edit: an edit is made, and labelled, on what the model
    sees). Each pass reshuffles with seed + pass number, so a run is repeatable and a resumed run sees the same
    order it would have seen.

    A pass covers every image exactly once, cut into equal-as-possible batches of at most `batch_size`
    (no ragged last batch to upset BatchNorm, nothing dropped). With `world_size` > 1 (torchrun), every rank
    draws the same permutation and takes every world_size-th batch of it, starting at its `rank`: disjoint
    shards that together cover the pass once, with the same number of steps on every rank, as DDP needs.
    """

    def __init__(self, images, labels, batch_size=256, shuffle=False, seed=0, hflip=False, vflip=False,
                 crop_padding=0, window=0, sharpness=None, robust=0.0, device="cpu", rank=0, world_size=1,
                 synthetic_edits=0.0, classes=None, edit_kinds=KINDS, masks=None, with_masks=False,
                 edit_classes=("REAL",), robust_extra=()):
        # a tensor (in memory, or on the GPU), or a split on disk (data.rows.DiskRows) read a batch at a time
        self.images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.hflip, self.vflip, self.crop_padding, self.sharpness = hflip, vflip, crop_padding, sharpness
        self.window = window  # > 0: a random window of this side of each image, at its own resolution
        self.robust = robust  # share of each batch hit by each trained label-neutral change
        self.robust_extra = robust_extra  # the kept-aside changes this run opted into
        # share of the REAL images of each batch edited on the fly and relabelled EDITED (`classes` names them)
        self.synthetic_edits, self.classes, self.edit_kinds = synthetic_edits, classes, edit_kinds
        self.edit_classes = edit_classes
        self.masks, self.with_masks = masks, with_masks
        self.device, self.rank, self.world_size = torch.device(device), rank, world_size
        if len(self.labels) < world_size:
            raise ValueError(f"{len(self.labels)} images cannot be shared among {world_size} processes")
        self.epoch = 0

    def __len__(self):
        """Steps per pass (on each rank)."""
        return -(-len(self.labels) // (self.batch_size * self.world_size))

    def batch_indices(self, order):
        """This rank's batches of a permutation `order`."""
        chunks = torch.tensor_split(order, len(self) * self.world_size)
        return chunks[self.rank::self.world_size]

    @property
    def augments(self) -> bool:
        return bool(self.hflip or self.vflip or self.crop_padding or self.sharpness or self.robust)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        n = len(self.labels)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        # every rank draws the same order, but its own augmentation (rank 0 continues the order's generator, so a
        # single process draws what it always did)
        aug_gen = gen if self.rank == 0 else torch.Generator().manual_seed(
            (self.seed * 100_003 + self.epoch) * 1_000 + self.rank)
        for idx in self.batch_indices(order):
            if self.shuffle:
                # sorted gathers read the memory map sequentially; order within a batch is irrelevant
                idx = idx.sort().values
            x = torch.as_tensor(self.images[idx]).to(self.device, non_blocking=True)  # a read, from disk
            y = self.labels[idx].to(self.device, non_blocking=True)
            m = None
            if self.with_masks:
                m = (self.masks[idx].to(self.device, non_blocking=True).bool() if self.masks is not None
                     else torch.zeros(len(idx), *x.shape[2:], dtype=torch.bool, device=self.device))
            if self.window:
                x, m = random_windows(x, m, self.window, aug_gen)
            if self.synthetic_edits:  # before the augmentation: an edited photo is then shared, resized, ...
                x, y, m = edit_some(x, y, self.classes, self.synthetic_edits, aug_gen, self.edit_kinds, m,
                                    self.edit_classes)
            if self.augments:
                x, m = self.augment(x, aug_gen, m)
            yield (x, y, m) if self.with_masks else (x, y)

    def augment(self, x, gen, m=None):
        """-> (augmented images, their masks moved the same way, or None)."""
        n = x.shape[0]

        def coin(p=0.5):
            return (torch.rand(n, generator=gen) < p).to(x.device).view(n, 1, 1, 1)

        def flip(x, m, dim):  # the same coin for an image and its mask
            c = coin()
            return torch.where(c, x.flip(dim), x), None if m is None else torch.where(c[:, 0], m.flip(dim - 1), m)

        if self.hflip:
            x, m = flip(x, m, 3)
        if self.vflip:
            x, m = flip(x, m, 2)
        if self.sharpness:
            factor, p = self.sharpness
            x = torch.where(coin(p), TF.adjust_sharpness(x, factor), x)
        if self.robust:  # degrades whole images: an edit stays where it was
            x = robust_augment(x, gen, self.robust, self.robust_extra)
        if self.crop_padding:
            pad = self.crop_padding
            h, w = x.shape[2:]
            mode = "reflect" if x.is_floating_point() else "constant"
            padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode=mode)
            dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
            # one shift per batch keeps this a single slice; batches differ, so samples see many shifts
            x = padded[:, :, dy:dy + h, dx:dx + w]
            if m is not None:
                m = torch.nn.functional.pad(m, (pad, pad, pad, pad))[:, dy:dy + h, dx:dx + w]
        return x, m

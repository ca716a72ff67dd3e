"""BatchNorm's running statistics, measured again for the weights being validated and saved.

In training, BatchNorm normalises by each batch's own statistics and keeps a running average (momentum 0.1) for
evaluation. That average trails the weights: it mixes statistics of the last ten or so steps' weights. Over
thousands of steps the weights move little in ten, and the average is right; a small dataset (540 images in
batches of 128: 30 steps in six epochs) moves them far, and the evaluation-mode network is then not the one that
trained (bench/small_dataset.py: validation accuracy 0.62 as saved, 0.87 for the same weights with their statistics
measured again; docs/results.md). So after every epoch the statistics are measured again, as a plain average over a
seeded sample of the training images as the run's batches show them (`statistics_images`: the same synthetic edits
and label-neutral changes, which training normalised with), drawn once.
"""
import numpy as np
import torch
from torch import nn

from utils.inference.outside import rows_on_cpu, training_view

STATS_IMAGES = 1024   # training images the statistics are measured on, up to 128 px (all of a smaller part)
STATS_PIXELS = STATS_IMAGES * 128 * 128  # larger images: as many as hold this many pixels, at least 64
STATS_BATCH_PIXELS = 256 * 32 * 32       # a forward pass: 256 images of 32 px, or as many pixels
STATS_SEED = 20


def statistics_images(images, labels, config: dict, classes, n=STATS_IMAGES, seed=STATS_SEED) -> torch.Tensor:
    """A seeded sample of `n` training images (a tensor or data.rows.DiskRows; `labels` theirs, in `classes`), as
    a training batch of the run (`config`, a dict) shows them."""
    n = min(n, max(64, STATS_PIXELS // (images.shape[2] * images.shape[3])))
    idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    return training_view(rows_on_cpu(images, idx), np.asarray(labels)[idx], config, classes, seed)


def batchnorm_layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def remeasure_batchnorm(model, images, device, with_map=False):
    """Replace every BatchNorm layer's running mean and variance with their average over uint8 `images` (a tensor
    or data.rows.DiskRows), computed with `model`'s current weights. Only the BatchNorm layers run in training mode
    (dropout stays off, so no random number is drawn); the model's modes and the layers' momentum are restored. A
    model without BatchNorm is left as it is."""
    layers = batchnorm_layers(model)
    if not layers or len(images) < 2:
        return
    per_batch = max(2, STATS_BATCH_PIXELS // (images.shape[2] * images.shape[3]))
    batches = np.array_split(np.arange(len(images)), -(-len(images) // per_batch))  # none of a single image
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
        m.train()
    try:
        for batch in batches:
            x = torch.as_tensor(np.asarray(images[batch])).to(device)
            model(x, tta="none", with_map=with_map)  # the plain view, as training saw its images
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)

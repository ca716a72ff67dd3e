""""Outside what I know": a score of how unlike the detector's training images an image is, and the cut above
which a verdict says so instead of being trusted.

The features are the detector's own activations at every resolution (the global average of each ReLU's output,
grouped by the size of its feature map: 32x32 texture and noise up to 4x4 content), not the last layer alone:
a robust detector's last layer is built to ignore how an image was made, so it barely tells a photograph from
elsewhere from a CIFAKE one, while its first layers still do (bench/real_photos.py prints the ROC-AUC).
Per group a Gaussian (mean, shared covariance with a small ridge) is fitted on training images as the run's
batches showed them (`training_view`: its synthetic edits and label-neutral changes drawn as in training, so
that an edited photo or a JPEG copy it was taught is inside, and the cut is not set by what the fit never saw);
an image's
score is its largest squared Mahalanobis distance over the groups, each divided by that group's median on
the fitting images (Lee et al. 2018 use one distance per layer the same way). The cut is the OUTSIDE_QUANTILE
quantile of the scores of held-out training-side images (the run's unedited validation images): by construction
about 2.5% of images like the training ones are called outside. A detector may read more (`fit_outside`'s options,
recorded in the statistics): every layer of a two-part detector, its localiser's too (`with_map`), and a "residual"
group, the spectrum of the image's noise residuals (`residual_features`), apart from any network. Nothing here ever sees
a test or real-photo image.
"""
import numpy as np
import torch
from torch import nn

from data.batches import Batches
from data.degradations import opt_in_kinds
from data.synthetic_edits import edit_classes_from, kinds_from

OUTSIDE_QUANTILE = 0.975
FIT_IMAGES = 20000  # training images the Gaussians are fitted on (a seeded sample; a run may ask for fewer)
FIT_BYTES = 256 * 2 ** 20  # and at most this much of them: 20,000 at 32 px, 1,365 crops of 256 px
RIDGE = 1e-2        # added to the covariance's diagonal, times its mean variance: keeps it invertible
# what the Gaussians are fitted on: the training images as the run's batches showed them (edits and label-neutral
# changes drawn), or as they are (FIT_VIEWS); statistics fitted otherwise than a detector's are refitted by ship()
FIT_VIEW = "training batches"
CLEAN_VIEW = "training images as they are"
FIT_VIEWS = (FIT_VIEW, CLEAN_VIEW)


@torch.no_grad()
def layer_features(model, images, batch_size=256, with_map=False, residual=False) -> dict:
    """{group: (N, channels) float64}: the global average of every ReLU's output of `model` (an ImageClassifier)
    on uint8 images, concatenated per feature-map size (the group is that size). One view, no TTA. `with_map`
    (a model with an edit map): its map's layers are run and read too (a two-part detector: both parts);
    `residual`: also the "residual" group, `residual_features` of the pixels."""
    model.eval()
    device = next(model.parameters()).device
    grabbed, hooks = [], []  # (feature-map size, its channels' averages), averaged at once in the hook

    def grab(module, inputs, output):
        if output.dim() == 4:
            grabbed.append((int(output.shape[-1]), output.float().mean((2, 3))))

    hooks = [m.register_forward_hook(grab) for m in model.net.modules() if isinstance(m, nn.ReLU)]
    out = {}
    try:
        for start in range(0, len(images), batch_size):
            grabbed.clear()
            x = torch.as_tensor(images[start:start + batch_size])
            model(x.to(device), tta="none", with_map=with_map)
            groups = {}
            for size, f in grabbed:
                groups.setdefault(size, []).append(f)
            for size, parts in groups.items():
                out.setdefault(size, []).append(torch.cat(parts, 1).double().cpu())
            if residual:
                out.setdefault("residual", []).append(residual_features(x))
    finally:
        for h in hooks:
            h.remove()
    ordered = sorted((k for k in out if k != "residual"), reverse=True) + (["residual"] if residual else [])
    return {k: torch.cat(out[k]).numpy() for k in ordered}


RESIDUAL_BINS = 8


def residual_features(images) -> torch.Tensor:
    """(N, 3 + 3 * RESIDUAL_BINS) float64 of uint8 images: how a camera's or a generator's noise looks, apart from
    the content. The grey image's three SRM high-pass residuals (models.edit_map), each's log standard deviation
    and log power spectrum in RESIDUAL_BINS radial frequency bands (in the spirit of SPAI, which learns real
    images' spectra and calls anything else out of distribution)."""
    from models.edit_map import SRM_KERNELS
    grey = torch.as_tensor(images).double().mean(1, keepdim=True) / 255.0
    r = torch.nn.functional.conv2d(grey, SRM_KERNELS.double().unsqueeze(1), padding=2)  # (N, 3, H, W)
    h, w = r.shape[-2:]
    power = torch.fft.fft2(r).abs().pow(2)
    fy, fx = torch.meshgrid(torch.fft.fftfreq(h), torch.fft.fftfreq(w), indexing="ij")
    band = ((fy ** 2 + fx ** 2).sqrt() / (0.5 * 2 ** 0.5) * RESIDUAL_BINS).long().clamp(max=RESIDUAL_BINS - 1)
    spectrum = torch.stack([power[..., band == b].mean(-1) for b in range(RESIDUAL_BINS)], -1)  # (N, 3, bins)
    return torch.cat([r.flatten(2).std(-1).add(1e-6).log(), spectrum.add(1e-9).log().flatten(1)], 1)


def _distances(features: dict, stats: dict) -> np.ndarray:
    """(N, groups) squared Mahalanobis distances, each divided by its group's median on the fitting images."""
    cols = []
    for size, g in stats["groups"].items():
        d = features[int(size) if size.isdigit() else size] - np.asarray(g["mean"], dtype=np.float64)
        cols.append(np.einsum("ni,ij,nj->n", d, np.asarray(g["precision"], dtype=np.float64), d) / g["median"])
    return np.stack(cols, 1)


def outside_scores(model, stats: dict, images) -> np.ndarray:
    """(N,) scores of uint8 images: above stats["threshold"] means outside what the detector knows."""
    return _distances(layer_features(model, images, with_map=stats.get("with_map", False),
                                     residual="residual" in stats["groups"]), stats).max(1)


def fit_outside(model, fit_images, heldout_images, quantile=OUTSIDE_QUANTILE, with_map=False,
                residual=False) -> dict:
    """The statistics stored in a checkpoint as "outside": per feature group (see `layer_features`) the mean,
    the precision matrix and the median distance on `fit_images`; the cut from `heldout_images` (never the
    images fitted on)."""
    features = layer_features(model, fit_images, with_map=with_map, residual=residual)
    groups = {}
    for size, f in features.items():
        cov = np.cov(f, rowvar=False)
        cov += RIDGE * np.mean(np.diag(cov)) * np.eye(len(cov))
        # torch tensors, not numpy arrays: a checkpoint is loaded with weights_only=True
        groups[str(size)] = {"mean": torch.from_numpy(f.mean(0)).float(),
                             "precision": torch.from_numpy(np.linalg.inv(cov)).float()}
    stats = {"groups": groups, "with_map": bool(with_map)}
    for size, g in groups.items():
        g["median"] = 1.0
    fitted = _distances(features, stats)
    for k, g in enumerate(groups.values()):
        g["median"] = float(np.median(fitted[:, k]))
    held = outside_scores(model, stats, heldout_images)
    stats.update(threshold=float(np.quantile(held, quantile)), quantile=quantile, fit_images=int(len(fit_images)),
                 heldout_images=int(len(heldout_images)))
    return stats


def features_of(stats) -> dict:
    """The fit_outside feature options fitted statistics were made with (with_map, residual)."""
    return {"with_map": bool(stats.get("with_map", False)), "residual": "residual" in stats["groups"]}


def summary(stats) -> dict:
    """What a model card says of the fitted score (the matrices stay in the checkpoint)."""
    groups = stats["groups"]
    return {k: v for k, v in stats.items() if k != "groups"} | {
        "feature_sizes": [int(k) if k.isdigit() else k for k in groups],
        "features": [len(g["mean"]) for g in groups.values()]}


def training_view(images, labels, config: dict, classes, seed=0) -> torch.Tensor:
    """uint8 `images` as a training batch of the run shows them (config: a checkpoint's "config"): the same share
    of REAL photos edited and relabelled, the same flips and label-neutral changes, drawn from `seed`."""
    batches = Batches(images, labels, batch_size=1024, seed=seed, hflip=config.get("hflip", False),
                      vflip=config.get("vflip", False), robust=config.get("robust", 0.0),
                      synthetic_edits=config.get("synthetic_edits", 0.0), classes=classes,
                      edit_kinds=kinds_from(config.get("edit_kinds")),
                      edit_classes=edit_classes_from(config.get("edit_classes")),
                      robust_extra=opt_in_kinds(config.get("robust_extra")))
    return torch.cat([x for x, _ in batches])


def rows_on_cpu(images, idx) -> torch.Tensor:
    """Rows `idx` of uint8 `images` (a tensor on any device, or a split on disk, data.rows.DiskRows) as a CPU
    tensor."""
    if torch.is_tensor(images):
        return images[torch.as_tensor(idx, device=images.device)].cpu()
    return torch.as_tensor(np.asarray(images[idx]))


def fit_for_run(model, images, labels, val_images, val_labels, config: dict, classes, pool=None, val_masks=None,
                view=FIT_VIEW, **features) -> dict:
    """fit_outside on a seeded sample of the config's outside_fit_images (FIT_IMAGES) of `images` (those indexed
    by `pool`, default all: a run's training images; `labels` theirs, in `classes`), as `training_view` shows
    them, cut on the run's unedited validation images: about 2.5% of photos like CIFAKE's are then outside (an edit is
    unlike them by nature, and cutting on edited images too set the cut so high that few photographs from elsewhere
    passed it). An edited validation image is known by its label (EDITED) or, where edits keep their class (a
    label-neutral run), by its edit mask `val_masks`. `view` CLEAN_VIEW fits the images as they are, with no change
    drawn: a tighter score, for a run whose drawn edits and changes widened it so far that photographs from
    elsewhere fell inside (two_part_edits). `images`: a tensor or a memory-mapped cache alike; `features`:
    fit_outside's with_map and residual."""
    if view not in FIT_VIEWS:
        raise ValueError(f"unknown outside fit view {view!r}; use one of {FIT_VIEWS}")
    seed = config.get("seed", 0)
    pool = np.arange(len(images)) if pool is None else np.asarray(pool)
    most = min(config.get("outside_fit_images", FIT_IMAGES), FIT_BYTES // max(1, images[0].nbytes))
    idx = np.sort(np.random.default_rng(seed).permutation(pool)[:most])
    fit = rows_on_cpu(images, idx)
    if view == FIT_VIEW:
        fit = training_view(fit, np.asarray(labels)[idx], config, classes, seed)
    unedited = np.asarray(val_labels) != (classes.index("EDITED") if "EDITED" in classes else -1)
    if val_masks is not None:
        unedited &= ~np.asarray(val_masks).reshape(len(val_masks), -1).any(1)
    return {**fit_outside(model, fit, val_images[torch.from_numpy(unedited)], **features), "fit_view": view}

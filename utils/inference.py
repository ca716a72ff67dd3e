"""Evaluation and prediction: running a model over cached images or over arbitrary files."""
import copy
import time
from pathlib import Path

import numpy as np
import torch

from data import DataError, load_folder, resolve_split
from data.batches import training_split
from data.derived import edit_kinds, edit_masks, edit_regions
from data.degradations import TEST_COPIES, degrade_copy, describe_copy, jpeg
from data.perturbed import SEED as PERTURBATION_SEED, perturbed_name
from data.rows import DiskRows
from data.synthetic_edits import edit_classes_from, kinds_from
from models import decide, probabilities
from utils import distributed
from utils.checkpoint import image_view, load_classifier
from utils.metrics import classification_metrics, edit_map_metrics, edited_recall
from utils.outside import outside_scores
from utils.prediction import is_uncertain, predict_files, verdict_indices
from utils.scoring import ONNX_BATCH, forward_for_scoring, onnx_runner, scoring_engine


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; anything else must name a device this machine has
    (a DataError otherwise: one line for the user, not a traceback)."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise DataError(f"--device {name}: not a device name ({str(e).splitlines()[0]}); use auto, cpu, cuda, "
                        "cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DataError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DataError(f"--device {name}: Apple's MPS is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DataError(f"--device {name}: not supported here; use auto, cpu, cuda, cuda:N or mps")
    return device


def eval_batch_size(device) -> int:
    """Images a forward pass when scoring. On a CPU small batches are faster: model_2's first activation map
    (64 x 30 x 30 floats an image) stays in cache at 64 images and spills at 256, where it scores ~1.5x slower
    (bench/pipeline.py measures it). A GPU wants large batches."""
    return 64 if torch.device(device).type == "cpu" else 1024


@torch.no_grad()
def run_model(model, images, batch_size=None, device="cpu", with_map=False, engine="auto"):
    """Logits (N, outputs) on the CPU for uint8 images (N, 3, H, W), in eval mode, batch by batch
    (`batch_size` None: the engine's); with `with_map` (a model with an edit map) -> (logits, edit-map
    probabilities (N, H, W)). `engine`: utils.scoring's (auto: ONNX Runtime for a large set on a CPU).
    Under torchrun every rank scores its own slice and all get the whole result (every rank must call it)."""
    model.eval()
    device = torch.device(device)
    images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    images = images.subset(distributed.shard(len(images))) if isinstance(images, DiskRows) \
        else images[distributed.shard(len(images))]
    forward = lambda x: forward_for_scoring(model, x, with_map)  # noqa: E731
    per_32px = max(1, images.shape[2] * images.shape[3] // 1024) if len(images) else 1  # a larger image: 32 px ones
    if scoring_engine(model, device, len(images) * per_32px, engine) == "onnxruntime":
        exported = onnx_runner(model, with_map, images)  # None: it does not export, so eager it is
        forward, batch_size = (exported, batch_size or max(1, ONNX_BATCH // per_32px)) if exported \
            else (forward, batch_size)
    batch_size = batch_size or max(1, eval_batch_size(device) // per_32px)  # the same pixels a batch at any size
    out, maps = [torch.empty(0, 1)], [torch.empty(0, *images.shape[2:])]  # for no images; dropped beside real ones
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start:start + batch_size]).to(device, non_blocking=True)  # a cache: read now
        if with_map:
            logits, edit_map = forward(x)
            maps.append(edit_map.float().squeeze(1).cpu())
        else:
            logits = forward(x)
        out.append(logits.float().cpu())
    logits = distributed.gather_cat(torch.cat(out[1:] or out))
    return (logits, distributed.gather_cat(torch.cat(maps[1:] or maps))) if with_map else logits


def run_with_map(model, images, batch_size=None, device="cpu"):
    """-> (logits, edit-map probabilities (N, H, W), or None for a model without a map): `run_model` for any
    model."""
    if model.has_edit_map:
        return run_model(model, images, batch_size, device, with_map=True)
    return run_model(model, images, batch_size, device), None


def map_labels(folder_classes, model_classes, where) -> np.ndarray:
    """Index map from a folder's class order to the model's; an unknown class is a clear error."""
    unknown = [c for c in folder_classes if c not in model_classes]
    if unknown:
        raise DataError(f"{where}: class folder(s) {', '.join(unknown)} unknown to the model; the folder has "
                        f"{', '.join(folder_classes)}, the checkpoint knows {', '.join(model_classes)} "
                        "(folder names are compared case-insensitively)")
    return np.array([model_classes.index(c) for c in folder_classes], dtype=np.int64)


def _classifier(checkpoint, device):
    """A checkpoint path, or an already loaded (model, checkpoint dict) pair. The caller's model is never
    moved: on another device, a copy is."""
    if isinstance(checkpoint, (str, Path)):
        return load_classifier(checkpoint, device)
    model, ck = checkpoint
    where, asked = next(model.parameters()).device, torch.device(device)
    if where.type != asked.type or (asked.index is not None and where.index != asked.index):
        model = copy.deepcopy(model).to(device)
    return model, ck


def predict_folder(checkpoint, test_path="test", batch_size=None, device="auto", verbose=True, jpeg_quality=None):
    """Score every image of a split or <CLASS>/ folder tree (re-saved as JPEG first with `jpeg_quality`).

    -> dict(folder=CachedFolder, labels (N,) in the verdicts' class order, probs (N, C), classes (the verdicts'),
    threshold, seconds, maps (N, H, W) or None, regions: each image's true edit box from the split's manifest, or
    None, predictions (N,), edit_scores (N,) or None: see `score_images`).
    """
    device = select_device(device)
    checkpoint = _classifier(checkpoint, device)
    size, resize = image_view(checkpoint[1])  # the images as the model was trained to see them
    folder = load_folder(resolve_split(test_path), verbose=verbose, image_size=size, resize=resize)
    images = folder.images if jpeg_quality is None else jpeg(torch.from_numpy(folder.images[:]), jpeg_quality)
    start = time.perf_counter()
    scored = score_images(checkpoint, images, batch_size, device)
    labels = map_labels(folder.classes, scored["classes"], folder.root)[folder.labels]
    if len(labels) == 0:
        raise DataError(f"{folder.root}: no readable images to evaluate")
    return dict(folder=folder, labels=labels, threshold=checkpoint[1].get("threshold"),
                seconds=time.perf_counter() - start, regions=edit_regions(folder), **scored)


def score_images(checkpoint, images, batch_size=None, device="cpu") -> dict:
    """A checkpoint's verdicts on uint8 images (N, 3, H, W): dict(probs (N, C), maps (N, H, W) or None, classes
    (the verdicts'), predictions (N,) indices into them, edit_scores (N,) or None, uncertain (N,) bool from the
    decision rule of the model's own probabilities, as predict's lines say it). A two-part detector (an
    `edit_rule`) gives REAL / EDITED / FAKE verdicts; its `probs` are then (1 - P(FAKE)) split by the edit score
    (half each at the cut), and P(FAKE): a ranking for the ROC-AUC, not calibrated probabilities."""
    model, ck = _classifier(checkpoint, device)
    logits, maps = run_with_map(model, images, batch_size, device)
    probs = probabilities(logits).numpy()
    maps = None if maps is None else maps.numpy()
    uncertain = np.array([is_uncertain(row, ck.get("threshold")) for row in probs], dtype=bool)
    classes, predictions, edit = verdict_indices(decide(probs, ck.get("threshold")).numpy(), ck["classes"], maps,
                                                 ck.get("edit_rule"))
    if edit is not None:
        e = np.clip(edit / (2 * ck["edit_rule"]["cut"]), 0, 1)
        probs = np.stack([(1 - probs[:, 1]) * (1 - e), (1 - probs[:, 1]) * e, probs[:, 1]], 1)
    return dict(probs=probs, maps=maps, classes=classes, predictions=predictions, edit_scores=edit,
                uncertain=uncertain)


def folder_edit_map_metrics(folder, maps) -> dict:
    """`utils.metrics.edit_map_metrics` of a folder's predicted maps: against the true masks on EDITED images
    whose source photo is found and whose edit changed pixels, and as false maps on REAL and FAKE images."""
    masks, known = edit_masks(folder)
    if "EDITED" in folder.classes:
        edited = np.asarray(folder.labels) == folder.classes.index("EDITED")
        known &= ~edited | masks.any((1, 2))  # an edit JPEG noise hides changes no pixel: nothing to find
    return edit_map_metrics(maps[known], masks[known])


def evaluate(checkpoint, test_path="test", batch_size=None, device="auto", verbose=True, jpeg_quality=None) -> dict:
    """Metrics of a checkpoint (path, or a (model, checkpoint dict) pair) on a split name or folder.

    With `jpeg_quality`, the same images are also re-saved as JPEG at that quality and scored again: the
    accuracy change exposes a model that learned compression history rather than the content."""
    device = select_device(device)
    checkpoint = _classifier(checkpoint, device)
    scored = predict_folder(checkpoint, test_path, batch_size, device, verbose)
    folder, labels = scored["folder"], scored["labels"]
    metrics = classification_metrics(labels, scored["probs"], scored["classes"], scored["threshold"],
                                     scored["predictions"])
    metrics.update(images_per_s=len(labels) / scored["seconds"], test_path=str(folder.root),
                   skipped=len(folder.skipped), found=folder.found, tta=checkpoint[0].tta)
    metrics.update(edited_recall(labels, scored["predictions"], scored["classes"], edit_kinds(folder)))
    if scored["maps"] is not None:
        metrics["edit_map"] = folder_edit_map_metrics(folder, scored["maps"])
    if jpeg_quality is not None:
        resaved = predict_folder(checkpoint, test_path, batch_size, device, False, jpeg_quality)
        again = classification_metrics(labels, resaved["probs"], scored["classes"], scored["threshold"],
                                       resaved["predictions"])
        metrics.update(jpeg_quality=int(jpeg_quality), jpeg_accuracy=again["accuracy"],
                       jpeg_balanced_accuracy=again["balanced_accuracy"],
                       jpeg_accuracy_change=again["accuracy"] - metrics["accuracy"])
    return metrics


def _robustness_row(name, what, metrics, rows) -> dict:
    called = np.asarray(metrics["confusion_matrix"]).sum(0) / max(metrics["n"], 1)
    return {"set": name, "perturbation": what, "n": metrics["n"], "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics["balanced_accuracy"], "roc_auc": metrics["roc_auc"],
            "ece": metrics.get("ece"),
            "accuracy_change": metrics["accuracy"] - (rows[0]["accuracy"] if rows else metrics["accuracy"]),
            # the share given each label: a three-class model on these REAL/FAKE sets may call them EDITED
            "called": {c: float(v) for c, v in zip(metrics["classes"], called)}}


def _robustness_sets():
    """("clean", "as shipped") and each test copy's (name, what it does)."""
    return [("clean", "as shipped")] + [(name, describe_copy(name)) for name in TEST_COPIES]


def robustness(checkpoint, base="test", batch_size=None, device="auto", verbose=True) -> list:
    """Metrics on a split and on each of its perturbed copies (JPEG 75 and 50, down/up resize, blur, noise,
    mirror; written by prepare.py, see data.perturbed) -> one row per set, the clean one first, with the
    accuracy change against it."""
    device = select_device(device)
    checkpoint = _classifier(checkpoint, device)
    base_dir = resolve_split(base)
    rows = []
    for name, what in _robustness_sets():
        split = base_dir if name == "clean" else base_dir.parent / perturbed_name(base_dir.name, name)
        if not split.is_dir():
            raise DataError(f"{split}: no perturbed copy of {base_dir.name} there; "
                            f"`python prepare.py --perturb {base_dir.name}` writes them")
        rows.append(_robustness_row(split.name, what, evaluate(checkpoint, split, batch_size, device, verbose=False),
                                    rows))
    return rows


def validation_robustness(checkpoint, batch_size=None, device="auto") -> list:
    """As `robustness`, on the checkpoint's own validation images (the seeded part of its training folder that
    chose its epoch), each degradation applied in memory: robust-training settings are compared here, so the
    perturbed test sets stay a report."""
    device = select_device(device)
    model, ck = _classifier(checkpoint, device)
    images, labels = validation_images(ck)
    gen = torch.Generator().manual_seed(PERTURBATION_SEED)
    rows = []
    for name, what in _robustness_sets():
        x = images if name == "clean" else degrade_copy(name, images, gen)
        probs = probabilities(run_model(model, x, batch_size, device)).numpy()
        metrics = classification_metrics(labels, probs, ck["classes"], ck.get("threshold"))
        rows.append(_robustness_row("validation" if name == "clean" else f"validation-{name}", what, metrics, rows))
    return rows


def checkpoint_split(ck):
    """-> (folder, Split) that the checkpoint's run trained and validated on (utils.training's definition)."""
    config = ck["config"]
    size, resize = image_view(ck)
    folder = load_folder(resolve_split(config["train_path"]), verbose=False, image_size=size, resize=resize)
    return folder, training_split(folder, config["val_fraction"], config["seed"], config.get("synthetic_edits", 0.0),
                                  kinds_from(config.get("edit_kinds")),
                                  config.get("max_train_images", 0), robust=config.get("robust", 0.0),
                                  edit_classes=edit_classes_from(config.get("edit_classes")),
                                  max_val_images=config.get("max_val_images", 0))


def validation_images(ck):
    """-> (uint8 images, labels in the checkpoint's class order) of the checkpoint's own validation split:
    the seeded part of its training folder that chose its epoch (with its synthetic edits, if it had any)."""
    folder, split = checkpoint_split(ck)
    return split.val_images, map_labels(split.classes, ck["classes"], folder.root)[np.asarray(split.val_labels)]


def random_examples(labels, cls: int, n: int, seed: int = 0) -> list:
    """n random indices of true class `cls` (seeded)."""
    idx = np.flatnonzero(np.asarray(labels) == cls)
    return sorted(np.random.default_rng(seed).permutation(idx)[:n].tolist())


def confident_mistakes(labels, probs, true_cls: int, n: int, threshold=None) -> list:
    """Indices of images of class `true_cls` given another label, most confident first (what the seed hunted
    for by hand: 'predicts fake but is actually real' and the reverse)."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    pred = decide(probs, threshold).numpy()
    idx = np.flatnonzero((labels == true_cls) & (pred != true_cls))
    return idx[np.argsort(-probs[idx, pred[idx]], kind="stable")][:n].tolist()


def predict(checkpoint, paths, batch_size=None, device="auto", progress=False, masks_dir=None, keep_arrays=False):
    """Yield one dict per file, in order: {path, label, probability, probabilities, uncertain} (with an edit
    map: also edit_box, edit_area, and with `masks_dir` the map's PNG as mask), {path, error} or {path, skipped}
    (see `utils.prediction.predict_files`, which also says what `keep_arrays` adds)."""
    device = select_device(device)
    model, ck = _classifier(checkpoint, device)
    if masks_dir is not None and not model.has_edit_map:
        raise DataError(f"{ck['model_name']} has no edit map to write (models with one: edit_map, edit_map_srm, "
                        "edit_map_bayar)")

    def score(images):
        logits, maps = run_with_map(model, torch.from_numpy(images), batch_size, device)
        probs = probabilities(logits)
        decisions = decide(probs, ck.get("threshold")).numpy()
        return (probs.numpy(), decisions) if maps is None else (probs.numpy(), decisions, maps.numpy())

    stats = ck.get("outside")
    outside = (lambda images: (outside_scores(model, stats, torch.from_numpy(images)), stats["threshold"])) \
        if stats else None
    size, resize = image_view(ck)
    yield from predict_files(score, ck["classes"], paths, progress=progress, threshold=ck.get("threshold"),
                             masks_dir=masks_dir, keep_arrays=keep_arrays, outside=outside,
                             edit_rule=ck.get("edit_rule"), image_size=size, resize=resize)

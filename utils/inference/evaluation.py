"""Evaluation: a checkpoint's verdicts and metrics on a cached split, its perturbed copies and its own validation
images."""
import time

import numpy as np
import torch

from data import DataError, load_folder, resolve_split
from data.batches import training_split
from data.degradations import TEST_COPIES, degrade_copy, describe_copy, jpeg
from data.derived import edit_kinds, edit_masks, edit_regions
from data.perturbed import SEED as PERTURBATION_SEED
from data.perturbed import perturbed_name
from data.synthetic_edits import edit_classes_from, kinds_from
from models import probabilities
from utils.inference.checkpoint import image_view, load_classifier
from utils.inference.metrics import classification_metrics, edit_map_metrics, edited_recall
from utils.inference.predict import score_images
from utils.inference.scoring import run_model, select_device
from utils.inference.verdict import decide, has_possible_band


def map_labels(folder_classes, model_classes, where) -> np.ndarray:
    """Index map from a folder's class order to the model's; an unknown class is a clear error."""
    unknown = [c for c in folder_classes if c not in model_classes]
    if unknown:
        raise DataError(f"{where}: class folder(s) {', '.join(unknown)} unknown to the model; the folder has "
                        f"{', '.join(folder_classes)}, the checkpoint knows {', '.join(model_classes)} "
                        "(folder names are compared case-insensitively)")
    return np.array([model_classes.index(c) for c in folder_classes], dtype=np.int64)


def predict_folder(checkpoint, test_path="test", batch_size=None, device="auto", verbose=True, jpeg_quality=None):
    """Score every image of a split or <CLASS>/ folder tree (re-saved as JPEG first with `jpeg_quality`).

    -> dict(folder=CachedFolder, labels (N,) in the verdicts' class order, probs (N, C), classes (the verdicts'),
    threshold, seconds, maps (N, H, W) or None, regions: each image's true edit box from the split's manifest, or
    None, predictions (N,), edit_scores (N,) or None: see `score_images`).
    """
    device = select_device(device)
    checkpoint = load_classifier(checkpoint, device)
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


def folder_edit_map_metrics(folder, maps) -> dict:
    """`utils.inference.metrics.edit_map_metrics` of a folder's predicted maps: against the true masks on EDITED images
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
    checkpoint = load_classifier(checkpoint, device)
    scored = predict_folder(checkpoint, test_path, batch_size, device, verbose)
    folder, labels = scored["folder"], scored["labels"]
    metrics = classification_metrics(labels, scored["probs"], scored["classes"], scored["threshold"],
                                     scored["predictions"])
    metrics.update(images_per_s=len(labels) / scored["seconds"], test_path=str(folder.root),
                   skipped=len(folder.skipped), found=folder.found, tta=checkpoint[0].tta)
    band = scored["possibly_edited"] if has_possible_band(checkpoint[1].get("edit_rule")) else None
    metrics.update(edited_recall(labels, scored["predictions"], scored["classes"], edit_kinds(folder), band))
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
    checkpoint = load_classifier(checkpoint, device)
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
    model, ck = load_classifier(checkpoint, device)
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
    """-> (folder, Split) that the checkpoint's run trained and validated on (utils.training.run's definition)."""
    config = ck["config"]
    size, resize = image_view(ck)
    folder = load_folder(resolve_split(config["train_path"]), verbose=False, image_size=size, resize=resize)
    masks = edit_masks(folder)[0] if "EDITED" in folder.classes else None  # as training passes them
    return folder, training_split(folder, config["val_fraction"], config["seed"], config["synthetic_edits"],
                                  kinds_from(config["edit_kinds"]), config["max_train_images"], masks,
                                  robust=config["robust"], edit_classes=edit_classes_from(config["edit_classes"]),
                                  max_val_images=config["max_val_images"],
                                  label_neutral=config.get("edits_label_neutral", False),
                                  own_edits_repeat=config.get("own_edits_repeat", 1))


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
    pred = np.asarray(decide(probs, threshold))
    idx = np.flatnonzero((labels == true_cls) & (pred != true_cls))
    return idx[np.argsort(-probs[idx, pred[idx]], kind="stable")][:n].tolist()



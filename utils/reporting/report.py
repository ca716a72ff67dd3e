"""All pictures of a checkpoint on a test split, written as PNG files (visualize.py and the notebook)."""
import json
from pathlib import Path

import numpy as np

from utils.inference.checkpoint import load_classifier
from utils.inference.evaluation import confident_mistakes, predict_folder, random_examples
from utils.inference.metrics import classification_metrics
from utils.reporting import plots
from utils.reporting.gradcam import gradcam


def load_history(run_dir):
    """The epoch rows of a run folder's history.json, or None when there is none."""
    path = Path(run_dir) / "history.json"
    return json.loads(path.read_text())["history"] if path.is_file() else None


def gradcam_grid(model, images, labels, probs, classes, indices, suptitle="Grad-CAM (predicted class)",
                 threshold=None):
    chosen = np.stack([np.asarray(images[i]) for i in indices])
    heat, _ = gradcam(model, chosen)
    titles, correct = plots.prediction_titles(labels, probs, classes, indices, threshold)
    return plots.image_grid(chosen, titles, correct, ncols=4, overlays=heat, suptitle=suptitle)


def edit_marks(scored, indices) -> dict:
    """What a grid of `indices` of a scored folder (predict_folder's result) shows of the edits: the true edit's
    box from the split's manifest (`boxes`) and, for a model with an edit map, its map (`edit_maps`)."""
    regions, maps = scored["regions"], scored.get("maps")  # read once, by predict_folder
    return dict(boxes=[regions[i] for i in indices], edit_maps=None if maps is None else [maps[i] for i in indices])


def write_report(checkpoint, test_path, out_dir, run_dir=None, n=4, seed=0, device="auto", scored=None) -> list:
    """Curves (from run_dir's history), confusion matrix, ROC, per-class and random 2x2 grids, the most
    confident mistakes of each kind (with a model's edit maps over them), and Grad-CAM overlays. Returns the PNG paths
    written. `scored`: predict_folder's result when the caller has it already (the notebook), to score only once."""
    model, ck = load_classifier(checkpoint, "cpu")
    scored = scored or predict_folder((model, ck), test_path, device=device)
    images, labels, probs, classes = scored["folder"].images, scored["labels"], scored["probs"], scored["classes"]
    threshold = scored.get("threshold")
    marks = lambda idx: edit_marks(scored, idx)  # noqa: E731
    out = Path(out_dir)
    written = []

    def save(fig, name):
        written.append(plots.save(fig, out / name))

    run_dir = Path(run_dir) if run_dir else Path(checkpoint).parent
    history = load_history(run_dir)
    if history:
        save(plots.training_curves(history), "curves.png")
    metrics = classification_metrics(labels, probs, classes, threshold)
    save(plots.confusion_figure(metrics["confusion_matrix"], classes,
                                f"confusion matrix (accuracy {metrics['accuracy']:.4f})"), "confusion.png")
    if len(set(labels.tolist())) > 1:
        save(plots.roc_figure(labels, probs, classes), "roc.png")
    for k, cls in enumerate(classes):
        idx = random_examples(labels, k, n, seed)
        if idx:
            save(plots.prediction_grid(images, labels, probs, classes, idx, suptitle=f"{cls}: random examples",
                                       threshold=threshold, **marks(idx)),
                 f"grid_{cls.lower()}.png")
        mistakes = confident_mistakes(labels, probs, k, n, threshold)
        if mistakes:
            save(plots.prediction_grid(images, labels, probs, classes, mistakes, threshold=threshold,
                                       suptitle=f"{cls} images, most confidently misclassified",
                                       **marks(mistakes)),
                 f"mistakes_{cls.lower()}.png")
    if scored.get("maps") is not None and "EDITED" in classes:  # the maps at a glance: eight EDITED images
        idx = random_examples(labels, classes.index("EDITED"), 8, seed)
        if idx:
            save(plots.prediction_grid(images, labels, probs, classes, idx, ncols=4, threshold=threshold,
                                       suptitle="edit maps (magenta) and the true edit (yellow box)", **marks(idx)),
                 "edit_maps.png")
    rng = np.random.default_rng(seed)
    sample = sorted(rng.choice(len(labels), min(n, len(labels)), replace=False).tolist())
    save(plots.prediction_grid(images, labels, probs, classes, sample, suptitle="random test images",
                               threshold=threshold, **marks(sample)), "grid_random.png")
    explain = [i for k in range(len(classes)) for i in random_examples(labels, k, 2, seed)]
    explain += [i for k in range(len(classes)) for i in confident_mistakes(labels, probs, k, 1, threshold)]
    save(gradcam_grid(model, images, labels, probs, classes, explain, threshold=threshold), "gradcam.png")
    return written

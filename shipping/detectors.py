"""The shipped detectors in weights/: how each is trained, how a run becomes one, and the figures its model card
gives (weights/<name>.json, written when it is shipped and checked by tests/test_shipped_weights.py).

A shipped detector is an ordinary checkpoint (utils/inference/checkpoint.py) whose weights are stored in half precision
when that was measured to give the same verdicts; it loads into float32 like any other.
"""
import json
from pathlib import Path

import numpy as np
import torch

from data import load_folder, resolve_split
from data.cache import atomic_write
from models import build_model
from shipping.two_part import two_part_checkpoint
from utils.inference.checkpoint import (
    DEFAULT_DETECTOR,
    WEIGHTS_DIR,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    weights_path,
)
from utils.inference.evaluation import checkpoint_split, evaluate, robustness
from utils.inference.outside import CLEAN_VIEW, FIT_VIEW, features_of, fit_for_run, outside_scores
from utils.inference.outside import summary as outside_summary
from utils.inference.predict import predict, score_images
from utils.inference.verdict import verdict_classes
from utils.reporting.bias import bias_table

# name -> what it is, the train.py arguments that make it (explicit epochs, so that a rerun anywhere trains as
# long as the shipped one did) and the test split its figures are measured on. A two-part detector
# (shipping/two_part.py) joins two networks: `joins`, its run is the localiser and the named shipped detector
# the real-vs-fake part; `localiser_args`, its run is the real-vs-fake part and a second run (trained first,
# in run_dir(name, "localiser")) the localiser. A recipe's `init_from` may name shipped weights to fine-tune.
DETECTORS = {
    "three_class": dict(
        what="REAL / EDITED / FAKE with an edit map, trained under label-neutral changes (the edits recipe: "
             "edit_map_srm)",
        train_args=["--recipe", "edits", "--budget-minutes", "0", "--epochs", "20"], test_path="test-3class"),
    "real_vs_fake_robust": dict(
        what="REAL / FAKE, trained to hold under JPEG, resizing and blur (the robust recipe)",
        train_args=["--recipe", "robust", "--budget-minutes", "0", "--epochs", "16"], test_path="test"),
    # last: it joins real_vs_fake_robust's shipped weights
    "two_part": dict(
        what="REAL / EDITED / FAKE as two answers: P(FAKE) from real_vs_fake_robust's network, EDITED from a separate "
             "edit localiser's map (the localiser recipe: edit_map_srm, 17 families of edit on REAL and FAKE "
             "alike), its cut passed by 1% of unedited validation images",
        train_args=["--recipe", "localiser", "--budget-minutes", "0", "--epochs", "8"], test_path="test-3class",
        joins="real_vs_fake_robust",
        # the outside score reads both parts' activations and the noise-residual spectrum: of the four candidates
        # bench/outside.py fits, it separates the made outside sets best (mean ROC-AUC 0.80; docs/results.md)
        outside=dict(with_map=True, residual=True)),
    # two_part's two networks, each fine-tuned: P(FAKE) so that no edit moves it, the localiser on the user's own
    # EDITED images; its run is the real-vs-fake part, its localiser a second run
    "two_part_edits": dict(
        what="REAL / EDITED / FAKE as two answers: P(FAKE) from real_vs_fake_robust fine-tuned with every edit drawn "
             "as label-neutral (the real_vs_fake_edits recipe), EDITED from two_part's localiser fine-tuned on the "
             "folder's own EDITED images (localiser_own_edits), its map's local and whole-image evidence in one "
             "score; EDITED at the cut 1% of unedited validation images pass, \"possibly edited\" down to the cut "
             "5% pass",
        localiser_args=["--recipe", "localiser_own_edits", "--epochs", "2"],
        train_args=["--recipe", "real_vs_fake_edits", "--epochs", "6"], test_path="test-3class",
        # fitted on the training images as they are: fitted on the batches, with every edit drawn, it called 36% of
        # the real photos from elsewhere outside (two_part: 85%); as they are, 76% (docs/results.md)
        outside=dict(with_map=True, residual=True), outside_view=CLEAN_VIEW),
}
SLICE_PER_CLASS = 200    # the regression slice: the first 200 files by name of each class of the test split
SAME_VERDICTS = 0.999    # half precision is shipped when at least this share of test verdicts is unchanged


def detector_path(name=DEFAULT_DETECTOR) -> Path:
    return weights_path(name)


def card_path(name=DEFAULT_DETECTOR) -> Path:
    return weights_path(name).with_suffix(".json")


def run_dir(name, part="") -> Path:
    """Where a detector's run lives (`part` "localiser": the run of a two-part detector's own localiser)."""
    return Path("runs") / f"weights-{name.replace('_', '-')}{'-' + part if part else ''}"


def train_commands(name) -> list:
    """-> [train.py arguments] of each run a detector is made from, in order: its own localiser first, if it
    trains one (`localiser_args`), then its run."""
    spec = DETECTORS[name]
    parts = [("localiser", spec["localiser_args"])] if spec.get("localiser_args") else []
    return [[*args, "--out", str(run_dir(name, part))] for part, args in [*parts, ("", spec["train_args"])]]


def train_command(name) -> str:
    return ", then ".join(" ".join(["python", "train.py", *args]) for args in train_commands(name))


def regression_slice(test_dir, per_class=SLICE_PER_CLASS):
    """-> (paths, class names): the first `per_class` image files by name in each class folder of `test_dir`.
    Chosen by name, not from a cache, so a test reads these files alone."""
    paths, labels = [], []
    for class_dir in sorted(p for p in Path(test_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in class_dir.iterdir() if f.is_file() and not f.name.startswith("."))[:per_class]
        paths += files
        labels += [class_dir.name.upper()] * len(files)
    return paths, labels


def slice_accuracy(classifier, test_dir, per_class=SLICE_PER_CLASS) -> dict:
    """Accuracy on the regression slice through predict()'s path (files decoded as predict.py decodes them);
    `classifier`: anything with predict(paths) (a (model, checkpoint) pair goes through utils.inference.evaluation)."""
    paths, labels = regression_slice(test_dir, per_class)
    results = list(classifier.predict(paths) if hasattr(classifier, "predict")
                   else predict(classifier, paths, device="cpu"))
    failed = [r for r in results if "label" not in r]
    if failed:
        raise RuntimeError(f"regression slice: {failed[0]['path']}: {failed[0].get('error')}")
    correct = sum(r["label"] == y for r, y in zip(results, labels))
    return {"n": len(labels), "per_class": per_class, "accuracy": correct / len(labels),
            "probabilities": [[round(v, 6) for v in r["probabilities"].values()] for r in results]}


def half_precision(ck: dict) -> dict:
    """The checkpoint with its floating-point weights in float16 (loading copies them back into float32)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
    return {**ck, "state_dict": state}


def _verdicts(ck, images):
    scored = score_images((model_from_checkpoint(ck), ck), images)
    return scored["predictions"], scored["probs"]


def half_precision_agreement(ck, test_path) -> dict:
    """How often float16 weights give the same verdict as float32 on every image of the test split."""
    images = load_folder(resolve_split(test_path), verbose=False).images
    full, p_full = _verdicts(ck, images)
    half, p_half = _verdicts(half_precision(ck), images)
    return {"n": int(len(images)), "same_verdict": float((full == half).mean()),
            "max_probability_change": float(np.abs(p_full - p_half).max())}


def _round(obj, digits=5):
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v, digits) for v in obj]
    return obj


def ship(name, run=None, out_dir=WEIGHTS_DIR, log=print) -> dict:
    """Copy a training run's checkpoint into `out_dir` as detector `name` (with its ONNX export) and measure
    what its model card reports; -> the card (also written as <name>.json beside the weights)."""
    from utils.inference.onnx_model import OnnxClassifier, export_onnx
    spec = DETECTORS[name]
    run = Path(run or run_dir(name))
    ck = load_checkpoint(run / "checkpoint.pt")
    if spec.get("joins"):  # the run is one part; the other is a shipped detector's weights
        log(f"{name}: joining {run} with weights/{spec['joins']}.pt and fitting the edit rule")
        ck = two_part_checkpoint(load_checkpoint(detector_path(spec["joins"])), ck)
    elif spec.get("localiser_args"):  # the run is the real-vs-fake part; its localiser run, <run>-localiser, joins it
        localiser_run = Path(f"{run}-localiser")
        log(f"{name}: joining {run} with the localiser {localiser_run}, fitting the edit rule")
        ck = two_part_checkpoint(ck, load_checkpoint(localiser_run / "checkpoint.pt"))
    features = {"with_map": False, "residual": False, **spec.get("outside", {})}
    stats = ck.get("outside") or {}
    # a run without the score, or with one fitted another way or on other features than this detector's
    view = spec.get("outside_view", FIT_VIEW)
    if stats.get("fit_view") != view or features_of(stats) != features:
        log(f"{name}: fitting the outside-what-I-know score on the run's training images ({features}, {view})")
        ck["outside"] = fit_outside_for(ck, view=view, **features)
    test_path = spec["test_path"]
    log(f"{name}: measuring half precision on {test_path}")
    agreement = half_precision_agreement(ck, test_path)
    shipped = half_precision(ck) if agreement["same_verdict"] >= SAME_VERDICTS else ck
    out_dir = Path(out_dir)
    weights = weights_path(name, out_dir)
    onnx_file = weights.with_suffix(".onnx")
    save_checkpoint({**shipped, "config": {**ck["config"], "out": str(run)}}, weights)
    classifier = (model_from_checkpoint(shipped), shipped)
    export_onnx(classifier, onnx_file)
    log(f"{name}: evaluating on {test_path} (clean, JPEG 75) and the perturbed copies of test")
    test = evaluate(classifier, test_path, device="cpu", verbose=False, jpeg_quality=75)
    rows = robustness(classifier, "test", device="cpu", verbose=False)
    test_dir = resolve_split(test_path)
    card = {
        "name": name, "what": spec["what"], "weights": weights.name, "onnx": onnx_file.name,
        "bytes": weights.stat().st_size, "onnx_bytes": onnx_file.stat().st_size,
        "dtype": "float16" if shipped is not ck else "float32", "half_precision": agreement,
        "train_command": train_command(name), "ship_command": f"python ship.py {name}",
        "model_name": ck["model_name"], "classes": ck["classes"], "epochs": ck["epoch"],
        "parameters": sum(p.numel() for p in build_model(ck["model_name"], len(ck["classes"])).parameters()),
        "temperature": ck["temperature"], "tta": ck["tta"], "provenance": ck.get("provenance"),
        "edit_rule": ck.get("edit_rule"), "parts": ck.get("parts"),
        "verdict_classes": verdict_classes(ck["classes"], ck.get("edit_rule")),
        "validation": ck.get("val_metrics"),
        "test": {**{k: v for k, v in test.items() if k != "confusion_matrix"}, "test_path": test_path},
        "robustness": rows,
        "bias": _bias_card(classifier),
        "outside": _outside_card(classifier, test_path),
        "regression_slice": {"test_path": test_path, **slice_accuracy(classifier, test_dir)},
        "onnx_slice": {k: v for k, v in slice_accuracy(OnnxClassifier(onnx_file), test_dir).items()
                       if k != "probabilities"},
    }
    card = _round(json.loads(json.dumps(card, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))))
    card_file = weights.with_suffix(".json")
    atomic_write(card_file, lambda f: f.write((json.dumps(card, indent=1) + "\n").encode()))
    log(f"{name}: wrote {weights} ({card['bytes'] / 1e6:.2f} MB, {card['dtype']}), {onnx_file} and {card_file}; "
        f"test accuracy {test['accuracy']:.4f}, slice {card['regression_slice']['accuracy']:.4f}")
    return card


def fit_outside_for(ck, view=FIT_VIEW, **features) -> dict:
    """utils.inference.outside's statistics for a checkpoint, from the training and validation parts of its own run (a
    two-part detector's: its real-vs-fake part's run), fitted on `view` (fit_for_run's); `features`: fit_outside's
    with_map and residual."""
    folder, split = checkpoint_split(ck)
    labels = np.zeros(len(folder.images), np.int64)
    labels[split.train_idx] = split.train_labels  # in the split's classes (EDITED among them when it edits)
    return fit_for_run(model_from_checkpoint(ck), folder.images, labels, split.val_images, split.val_labels,
                       ck["config"], split.classes, pool=split.train_idx, val_masks=split.val_masks, view=view,
                       **features)


def _outside_card(classifier, test_path) -> dict:
    """The outside score's summary, and the share of images called outside on CIFAKE's own test split
    (`test_outside`: REAL and FAKE as shipped) and on the detector's test split (edited images among them)."""
    model, ck = classifier
    cut = ck["outside"]["threshold"]
    by_split = {split: float(np.mean(outside_scores(model, ck["outside"], test_images(split)) > cut))
                for split in dict.fromkeys(("test", test_path))}
    return {**outside_summary(ck["outside"]), "test_outside": by_split["test"], "outside_by_split": by_split}


def test_images(test_path):
    return torch.from_numpy(np.asarray(load_folder(resolve_split(test_path), verbose=False).images))


def _bias_card(classifier) -> dict:
    """bench/bias.py's table for the card: per change, accuracy and the share called EDITED."""
    table = bias_table(classifier)
    return {"n": table["n"], "worst_real_vs_fake_accuracy": table["worst_real_vs_fake_accuracy"],
            "worst_change": table["worst_change"], "max_called_edited": table["max_called_edited"],
            "changes": {k: {"what": r["what"], "trained": r["trained"], "trained_by": r.get("trained_by"),
                            "accuracy": r["accuracy"],
                            "called_edited": r["called_edited"], "moved": r["moved"]}
                        for k, r in {"clean": {**table["clean"], "what": "as shipped", "trained": None},
                                     **table["changes"]}.items()}}


def load_card(name=DEFAULT_DETECTOR) -> dict:
    return json.loads(card_path(name).read_text())


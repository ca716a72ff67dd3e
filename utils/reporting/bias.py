"""How much a detector answers from a file's history instead of its picture: the share of REAL and FAKE verdicts
that a label-neutral change of the whole image moves, and where they go (data.degradations.BIAS_CHANGES).

A REAL or FAKE image called EDITED after such a change is a false edit alarm; one called the other class is a
plain mistake. bench/bias.py prints the table and ship() writes it into a shipped detector's card.
"""
import numpy as np
import torch

from data import load_folder, resolve_split
from data.degradations import BIAS_CHANGES, apply_change, describe_change, is_trained, opt_in_kinds
from utils.inference.checkpoint import load_classifier
from utils.inference.evaluation import map_labels
from utils.inference.predict import score_images
from utils.inference.scoring import select_device

BIAS_SEED = 2026
PER_CLASS = 1000  # images of each of REAL and FAKE: a rate near 95% is then known to about +-1.4 points (95%)


def bias_images(test_path="test", per_class=PER_CLASS, seed=BIAS_SEED):
    """-> (uint8 images, class names): a seeded sample of `per_class` REAL and `per_class` FAKE images of a split."""
    folder = load_folder(resolve_split(test_path), verbose=False)
    rng = np.random.default_rng(seed)
    labels = np.asarray(folder.labels)
    picked = []
    for cls in ("REAL", "FAKE"):
        if cls not in folder.classes:
            raise ValueError(f"{folder.root}: the bias table needs REAL and FAKE images; it has "
                             f"{', '.join(folder.classes)}")
        idx = np.flatnonzero(labels == folder.classes.index(cls))
        picked.append(np.sort(rng.permutation(idx)[:per_class]))
    idx = np.concatenate(picked)
    return torch.from_numpy(np.ascontiguousarray(folder.images[idx])), [folder.classes[k] for k in labels[idx]]


def trained_by(name: str, ck: dict, changes=BIAS_CHANGES) -> list:
    """The parts of checkpoint `ck` whose training drew change `name`'s kind (its parts', or ["model"])."""
    parts = ck.get("parts") or {"model": {"config": ck.get("config")}}
    return [part for part, about in parts.items()
            if is_trained(name, changes, opt_in_kinds((about.get("config") or {}).get("robust_extra")))]


def _verdicts(model, ck, images, device):
    """-> (each image's verdict by name, the verdicts' class names)."""
    scored = score_images((model, ck), images, device=device)
    return np.asarray(scored["classes"])[scored["predictions"]], scored["classes"]


def _row(verdicts, clean, truth, classes) -> dict:
    """Accuracy (an EDITED verdict is wrong), share called EDITED, share of verdicts moved from the clean ones,
    and per true class where the verdicts went."""
    row = {"accuracy": float(np.mean(verdicts == truth)),
           "called_edited": float(np.mean(verdicts == "EDITED")),
           "moved": float(np.mean(verdicts != clean)), "by_class": {}}
    for cls in ("REAL", "FAKE"):
        own = truth == cls
        row["by_class"][cls] = {c: float(np.mean(verdicts[own] == c)) for c in classes}
        row["by_class"][cls]["moved"] = float(np.mean(verdicts[own] != clean[own]))
    return row


def bias_table(checkpoint, images=None, truth=None, changes=BIAS_CHANGES, device="cpu") -> dict:
    """The bias table of a checkpoint (path or (model, checkpoint dict)) on REAL/FAKE `images` with class names
    `truth` (default: `bias_images()`). -> {clean, changes: {name: row}, worst_real_vs_fake_accuracy,
    max_called_edited, worst_change, n}."""
    device = select_device(device)
    model, ck = load_classifier(checkpoint, device)
    if images is None:
        images, truth = bias_images()
    map_labels(sorted(set(truth)), ck["classes"], "bias table")  # REAL and FAKE must be the model's classes
    truth = np.asarray(truth)
    clean, classes = _verdicts(model, ck, images, device)
    gen = torch.Generator().manual_seed(BIAS_SEED)
    rows = {}
    for name in changes:
        verdicts, _ = _verdicts(model, ck, apply_change(changes, name, images, gen), device)
        drawn_by = trained_by(name, ck, changes)
        rows[name] = {"what": describe_change(changes, name), "trained_by": drawn_by,
                      "trained": len(drawn_by) == len(ck.get("parts") or [0]), **_row(verdicts, clean, truth, classes)}
    worst = min(rows, key=lambda k: rows[k]["accuracy"])
    return {"n": int(len(truth)), "clean": _row(clean, clean, truth, classes), "changes": rows,
            "worst_real_vs_fake_accuracy": rows[worst]["accuracy"], "worst_change": worst,
            "max_called_edited": max(r["called_edited"] for r in rows.values())}


def format_bias_table(table: dict, title: str) -> str:
    lines = [f"== {title}: {table['n']} REAL and FAKE images",
             f"{'change':14s} {'':8s} {'accuracy':>8s} {'EDITED':>7s} {'moved':>6s}  "
             "REAL->(R/E/F)        FAKE->(R/E/F)"]

    def fmt(name, what, row, trained=""):
        by = row["by_class"]
        spread = ["/".join(f"{by[c].get(k, 0.0):.2f}" for k in ("REAL", "EDITED", "FAKE")) for c in ("REAL", "FAKE")]
        return (f"{name:14s} {trained:8s} {row['accuracy']:8.2%} {row['called_edited']:7.2%} {row['moved']:6.2%}  "
                f"{spread[0]:20s} {spread[1]:20s} {what}")

    lines.append(fmt("clean", "as shipped", table["clean"]))
    for name, row in table["changes"].items():
        mark = "trained" if row["trained"] else ",".join(row.get("trained_by") or ["unseen"])
        lines.append(fmt(name, row["what"], row, mark))
    lines.append(f"worst real-vs-fake accuracy {table['worst_real_vs_fake_accuracy']:.2%} ({table['worst_change']}), "
                 f"most called EDITED {table['max_called_edited']:.2%}")
    return "\n".join(lines)

"""Classification metrics from labels and class probabilities, in numpy: scikit-learn's definitions (the tests
hold them to its figures), without its 1.3 s import in every run's test report."""
import math

import numpy as np

from utils.inference.verdict import decide


def confusion_matrix(labels, preds, n_classes) -> np.ndarray:
    """(n_classes, n_classes) counts, rows the true class, columns the verdict."""
    return np.bincount(n_classes * np.asarray(labels, dtype=np.int64) + np.asarray(preds, dtype=np.int64),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def roc_auc(positive, scores) -> float:
    """The ROC-AUC of `scores` for the bool labels `positive`: the chance that a positive outranks a negative,
    ties counted half (Mann-Whitney's U from average ranks; the area under the ROC curve, as scikit-learn's)."""
    positive, scores = np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64)
    _, where, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[where]  # 1-based, ties share their average rank
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the ROC-AUC needs positives and negatives")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _per_class_scores(cm):
    """Per class (precision, recall, F1, support) from a confusion matrix; 0 where undefined (scikit-learn's
    zero_division=0)."""
    tp = np.diag(cm).astype(np.float64)
    called, support = cm.sum(0), cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(called > 0, tp / called, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(called + support > 0, 2 * tp / (called + support), 0.0)
    return precision, recall, f1, support


def wilson_interval(successes: int, n: int, z: float = 1.96):
    """95% Wilson score interval for a rate; sound near 0 and 1, unlike the normal approximation."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def expected_calibration_error(labels, probs, bins: int = 15) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by their share of the images."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if len(labels) == 0:
        return float("nan")
    confidence, predicted = probs.max(1), decide(probs)
    correct = predicted == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(labels, probs, classes, threshold=None, predictions=None) -> dict:
    """labels (N,) int, probs (N, C) -> dict of plain floats/lists (JSON- and checkpoint-safe).

    Binary: precision/recall/F1 of the positive class (classes[1]); more classes: macro averages.
    A set holding one class only gets `detection_rate` (the fraction given that class) and its 95% interval; a set
    holding two of a model's 3+ classes, the ROC-AUC of the later class's probability within the pair.
    `threshold`: for two classes, P(positive) >= threshold decides (utils.inference.verdict.decide); `predictions`: the
    verdicts when another rule made them (a two-part detector's, utils.inference.verdict.verdicts).
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(classes)
    preds = np.asarray(decide(probs, threshold)) if predictions is None else np.asarray(predictions, dtype=np.int64)
    all_labels = list(range(n_classes))
    present = sorted(set(labels.tolist()))
    cm = confusion_matrix(labels, preds, n_classes)
    binary = n_classes == 2
    prec, rec, f1, support = _per_class_scores(cm)
    # a class's accuracy is its recall; None for a class the set does not hold
    per_class = {classes[c]: (float(rec[c]) if support[c] else None) for c in all_labels}
    # binary: the positive class's; more classes: the mean over the classes present (scikit-learn's macro)
    averaged = (lambda v: float(v[1])) if binary else (lambda v: float(np.mean(v[present])) if present else 0.0)
    out = {
        "n": int(len(labels)),
        "classes": list(classes),
        "positive_class": classes[1] if binary else None,
        "accuracy": float(np.mean(labels == preds)) if len(labels) else None,
        "balanced_accuracy": float(np.mean([per_class[classes[c]] for c in present])) if present else None,
        "precision": averaged(prec), "recall": averaged(rec), "f1": averaged(f1),
        "roc_auc": None,
        "ece": expected_calibration_error(labels, probs) if len(labels) else None,
        "confusion_matrix": cm.tolist(),
        "per_class_accuracy": per_class,
        "per_class": {},
        "threshold": threshold,
    }
    for c in all_labels:
        out["per_class"][classes[c]] = {"precision": float(prec[c]), "recall": float(rec[c]), "f1": float(f1[c]),
                                        "support": int(support[c])}
    if len(present) >= 2:
        if binary:
            out["roc_auc"] = roc_auc(labels == 1, probs[:, 1])
        elif len(present) == n_classes:  # one class against the rest, averaged over the classes
            out["roc_auc"] = float(np.mean([roc_auc(labels == c, probs[:, c]) for c in all_labels]))
        elif len(present) == 2:  # two of a model's classes (REAL vs EDITED): the later one's share of the pair
            a, b = present
            out["roc_auc"] = roc_auc(labels == b, probs[:, b] / (probs[:, a] + probs[:, b]).clip(1e-12))
    if len(present) == 1:  # e.g. a folder of fakes from another generator
        c = present[0]
        hits = int(cm[c, c])
        out["detection_rate"] = hits / len(labels)
        out["detection_class"] = classes[c]
        out["detection_rate_ci95"] = list(wilson_interval(hits, len(labels)))
    return out


def edited_recall(labels, predictions, classes, kinds, possibly=None) -> dict:
    """For a split with EDITED images: the share of EDITED images called EDITED, per kind of edit (`kinds`: per
    image its first edit's kind from the manifest, or None), and the share of REAL images called EDITED (the
    false alarms). With `possibly` (a two-part detector's "possibly edited" band, (N,) bool), each also within
    that band: `recall_possible`, `edited_recall_possible`, `real_possibly_edited` (REAL called EDITED or
    possibly edited). {} when the classes have no EDITED."""
    if "EDITED" not in classes:
        return {}
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    edited = classes.index("EDITED")
    flagged = predictions == edited
    if possibly is not None:
        flagged = flagged | np.asarray(possibly, bool)
    out = {"edited_recall_by_kind": {}}
    for kind in sorted({k for k, y in zip(kinds, labels) if k and y == edited}):
        hit = np.array([k == kind for k in kinds]) & (labels == edited)
        out["edited_recall_by_kind"][kind] = {"recall": float((predictions[hit] == edited).mean()), "n": int(hit.sum())}
        if possibly is not None:
            out["edited_recall_by_kind"][kind]["recall_possible"] = float(flagged[hit].mean())
    if possibly is not None and (labels == edited).any():
        out["edited_recall_possible"] = float(flagged[labels == edited].mean())
    if "FAKE" in classes and (labels == edited).any():
        out["edited_called_fake"] = float((predictions[labels == edited] == classes.index("FAKE")).mean())
    if "REAL" in classes and (labels == classes.index("REAL")).any():
        real = labels == classes.index("REAL")
        out["real_called_edited"] = float((predictions[real] == edited).mean())
        if possibly is not None:
            out["real_possibly_edited"] = float(flagged[real].mean())
    return out


def edit_map_metrics(prob_maps, true_masks, threshold=0.5, min_area=4) -> dict:
    """How well per-pixel edit maps find the edits. prob_maps (N, H, W) in 0..1, true_masks (N, H, W) bool.
    On images with an edit (a non-empty true mask): the mean per-image F1 and IoU of the map thresholded at a
    fixed `threshold` (not a per-image best one) and the ROC-AUC over all their pixels. On the others: the share
    whose thresholded map covers `min_area` pixels or more (a false map)."""
    probs = np.asarray(prob_maps, dtype=np.float64).reshape(len(prob_maps), -1)
    truth = np.asarray(true_masks, dtype=bool).reshape(len(true_masks), -1)
    predicted = probs >= threshold
    edited = truth.any(1)
    tp = (predicted & truth).sum(1)
    fp = (predicted & ~truth).sum(1)
    fn = (~predicted & truth).sum(1)
    out = {"edited_images": int(edited.sum()), "clean_images": int((~edited).sum()), "threshold": threshold,
           "min_area": min_area,
           "pixel_f1": None, "pixel_iou": None, "pixel_roc_auc": None, "false_map_rate": None}
    if edited.any():
        e = edited
        out["pixel_f1"] = float(np.mean(2 * tp[e] / (2 * tp[e] + fp[e] + fn[e])))
        out["pixel_iou"] = float(np.mean(tp[e] / (tp[e] + fp[e] + fn[e])))
        pixels, labels = probs[e].ravel(), truth[e].ravel()
        if not labels.all():
            out["pixel_roc_auc"] = roc_auc(labels, pixels)
    if (~edited).any():
        out["false_map_rate"] = float(np.mean(predicted[~edited].sum(1) >= min_area))
    return out


def _fmt(v):
    if v is None:
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def format_robustness(rows) -> str:
    """The robustness table: one line per (perturbed) set."""
    edited = "EDITED" in rows[0].get("called", {}) if rows else False  # a three-class model: how much it calls EDITED
    lines = [f"{'set':<18} {'perturbation':<30} {'n':>6} {'accuracy':>9} {'change':>8} {'bal.acc':>8} "
             f"{'roc_auc':>8} {'ece':>7}" + (f" {'EDITED':>7}" if edited else "")]
    for r in rows:
        lines.append(f"{r['set']:<18} {r['perturbation']:<30} {r['n']:>6} {r['accuracy']:>9.4f} "
                     f"{r['accuracy_change']:>+8.4f} {r['balanced_accuracy']:>8.4f} {_fmt(r['roc_auc']):>8} "
                     f"{_fmt(r['ece']):>7}" + (f" {r['called']['EDITED']:>7.4f}" if edited else ""))
    return "\n".join(lines)


def format_metrics(m: dict) -> str:
    """A readable table of a metrics dict."""
    lines = []
    pos = m.get("positive_class")
    if pos:
        lines.append(f"positive class: {pos} (probabilities are P({pos}); {m['classes'][0]} is negative)")
    for key in ("n", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "ece", "images_per_s"):
        if key in m:
            lines.append(f"{key:>18}  {_fmt(m[key])}")
    if "detection_rate" in m:
        lo, hi = m["detection_rate_ci95"]
        lines.append(f"{'detection_rate':>18}  {m['detection_rate']:.4f} of {m['n']} given "
                     f"{m['detection_class']} (95% CI {lo:.4f}-{hi:.4f})")
    if m.get("tta", "none") != "none":
        lines.append(f"{'test-time aug.':>18}  {m['tta']}")
    if m.get("threshold") is not None:
        lines.append(f"{'threshold':>18}  {m['threshold']:.4f} (tuned on validation)")
    for kind, v in m.get("edited_recall_by_kind", {}).items():
        band = f" ({v['recall_possible']:.4f} with possibly edited)" if "recall_possible" in v else ""
        lines.append(f"{'EDITED recall':>18}  {v['recall']:.4f}{band} of {v['n']} {kind}")
    if m.get("edited_recall_possible") is not None:
        lines.append(f"{'EDITED or possibly':>18}  {m['edited_recall_possible']:.4f} of the EDITED images")
    if m.get("edited_called_fake") is not None:
        lines.append(f"{'EDITED called FAKE':>18}  {m['edited_called_fake']:.4f}")
    if m.get("real_called_edited") is not None:
        lines.append(f"{'REAL called EDITED':>18}  {m['real_called_edited']:.4f}"
                     + (f" ({m['real_possibly_edited']:.4f} with possibly edited)"
                        if m.get("real_possibly_edited") is not None else ""))
    if m.get("edit_map"):
        e = m["edit_map"]
        lines.append(f"{'edit map':>18}  pixel F1 {_fmt(e['pixel_f1'])}, IoU {_fmt(e['pixel_iou'])}, pixel ROC-AUC "
                     f"{_fmt(e['pixel_roc_auc'])} on {e['edited_images']} EDITED images (threshold {e['threshold']})")
        lines.append(f"{'false maps':>18}  {_fmt(e['false_map_rate'])} of {e['clean_images']} REAL and FAKE images "
                     f"(a map of {e['min_area']}+ pixels)")
    if "jpeg_quality" in m:
        lines.append(f"{'jpeg re-save':>18}  quality {m['jpeg_quality']}: accuracy {m['jpeg_accuracy']:.4f} "
                     f"({m['jpeg_accuracy_change']:+.4f} against the files as they are)")
    lines.append(f"{'class':>18}  precision  recall     f1  support")
    for c, v in m["per_class"].items():
        lines.append(f"{c:>18}  {v['precision']:9.4f} {v['recall']:7.4f} {v['f1']:6.4f} {v['support']:8d}")
    classes = m["classes"]
    width = max(8, *(len(c) + 2 for c in classes))
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{c:>{width}}" for c in classes))
    for c, row in zip(classes, m["confusion_matrix"]):
        lines.append(f"{c:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)

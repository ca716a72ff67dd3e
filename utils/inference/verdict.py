"""The decision rule: a model's scores in, verdicts out. This is the only place a label is made, for the PyTorch
path, the ONNX path, evaluation, the bias table, shipping, the page, the notebook and the benches. Imports no
torch: `decide` takes numpy arrays and torch tensors alike.

- `decide`: class indices from probabilities (argmax, or P(positive) >= a threshold tuned on validation);
- `uncertain`: whether a verdict lies near the cut that made it;
- `edit_scores`, `rule_edit_scores`: a two-part detector's edit map pooled into one score an image;
- `possibly_edited`: the band below the EDITED cut that a user is shown as "possibly edited";
- `verdicts`: all of it at once: (the verdicts' class names, labels, uncertain);
- `verdict_fields` and `format_line`: one image's verdict as predict.py, the page and the notebook report it.
"""
import numpy as np

VERDICT_CLASSES = ["REAL", "EDITED", "FAKE"]  # a two-part detector's verdicts (models/two_part.py)
UNCERTAIN_BELOW = 0.75  # with 3+ classes, a verdict whose calibrated probability is under this is "uncertain"


def decide(probs, threshold=None):
    """Class indices from (N, C) probabilities (numpy or torch): argmax, or for two classes P(positive) >= threshold
    when a threshold was tuned on validation (it is stored in the checkpoint)."""
    if not hasattr(probs, "shape"):
        probs = np.asarray(probs)
    if threshold is not None and probs.shape[1] == 2:
        return (probs[:, 1] >= threshold) * 1
    return probs.argmax(1)


def uncertain(probs, threshold=None) -> np.ndarray:
    """(N,) bool: whether each verdict is uncertain, from the decision rule that made it. Two classes, decided by
    P(positive) >= t (t = 0.5 unless one was tuned on validation): uncertain when P(positive) lies in the half
    of its side of the cut nearest to it, t/2 < P < (1 + t)/2 (at t = 0.5: the chosen class's probability under
    0.75). More classes (argmax): the chosen class's probability under UNCERTAIN_BELOW."""
    probs = np.atleast_2d(np.asarray(probs))
    if probs.shape[1] == 2:
        t = 0.5 if threshold is None else float(threshold)
        return (t / 2 < probs[:, 1]) & (probs[:, 1] < (1 + t) / 2)
    return probs.max(1) < UNCERTAIN_BELOW


def edit_scores(prob_maps, pixels, whole_weight=0.0) -> np.ndarray:
    """(N, H, W) edit maps in 0..1 -> (N,) edit scores: the larger of two kinds of evidence.
    - local: the mean of each map's `pixels` highest values less the map's median. A region that stands out
      against the rest of its own image scores high; a change of the whole image that lifts the map everywhere
      (a re-save, sharpening, another camera) lifts its median too;
    - whole-image: the map's mean, times `whole_weight` (0: not used). An edit spread over the whole image (the
      seed's salt-and-pepper specks) lifts the map everywhere, and the median with it: only the mean sees it.
      The map was trained to stay low under every label-neutral change, so those do not lift it."""
    return weigh_evidence(*edit_score_parts(prob_maps, pixels), whole_weight)


def weigh_evidence(local, whole, whole_weight) -> np.ndarray:
    """The edit score from its two parts (`edit_score_parts`): the larger of the local evidence and the weighed
    whole-image evidence."""
    return np.maximum(local, whole_weight * whole) if whole_weight else local


def edit_score_parts(prob_maps, pixels) -> tuple:
    """-> ((N,) local evidence, (N,) whole-image evidence) of `edit_scores`, before they are weighed."""
    if len(prob_maps) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    flat = np.asarray(prob_maps, dtype=np.float32).reshape(len(prob_maps), -1)
    top = np.partition(flat, flat.shape[1] - pixels, axis=1)[:, -pixels:]
    return top.mean(1) - np.median(flat, axis=1), flat.mean(1)


def rule_edit_scores(prob_maps, edit_rule) -> np.ndarray:
    """The edit scores of a two-part detector's `edit_rule` (its region size and whole-image weight)."""
    return edit_scores(prob_maps, edit_rule["pixels"], edit_rule.get("whole_weight", 0.0))


def has_possible_band(edit_rule) -> bool:
    """Whether a rule has the "possibly edited" band (a `possible_cut`); `two_part`'s has none."""
    return bool(edit_rule) and edit_rule.get("possible_cut") is not None


def possibly_edited(labels, edit, edit_rule) -> np.ndarray:
    """(N,) bool: the verdicts (indices into VERDICT_CLASSES) that are not EDITED but whose edit score reaches the
    rule's `possible_cut` (passed by a larger share of unedited validation images than the EDITED cut): shown
    as "possibly edited", and uncertain. A rule without that cut has no band."""
    if not has_possible_band(edit_rule):
        return np.zeros(len(labels), bool)
    return (np.asarray(labels) != 1) & (np.asarray(edit) >= edit_rule["possible_cut"])


def edit_evidence(edit, cut):
    """An edit score on a 0..1 scale for display and ranking: 0.5 at the EDITED cut, 1 at twice the cut."""
    return np.clip(np.asarray(edit) / (2 * cut), 0, 1)


def verdict_classes(classes, edit_rule=None) -> list:
    """The class names a model's verdicts use: a two-part detector's VERDICT_CLASSES, else its own classes."""
    return VERDICT_CLASSES if edit_rule else list(classes)


def verdicts(probs, classes, threshold=None, edit=None, edit_rule=None):
    """-> (the verdicts' class names, label indices (N,) into them, uncertain (N,) bool).

    Without `edit_rule`: the model's own decision over its `classes`. With one (a two-part detector: classes
    REAL, FAKE, and `edit`, its (N,) edit scores): FAKE where the real-vs-fake part says so, unless the edit
    score reaches the rule's cut and P(FAKE) is under its `edit_wins_below` (a strong edit over a middling
    P(FAKE); absent: FAKE is always asked first); else EDITED where the edit score reaches the cut, else REAL.
    `uncertain` is that of the model's own probabilities, and true in the "possibly edited" band too."""
    probs = np.atleast_2d(np.asarray(probs))
    decisions = np.asarray(decide(probs, threshold))
    unsure = uncertain(probs, threshold)
    if not edit_rule:
        return verdict_classes(classes), decisions, unsure
    if edit is None:
        raise ValueError("an edit rule needs the model's edit scores")
    edited = np.asarray(edit) >= edit_rule["cut"]
    fake = decisions == list(classes).index("FAKE")
    if edit_rule.get("edit_wins_below") is not None:
        fake &= ~(edited & (probs[:, list(classes).index("FAKE")] < edit_rule["edit_wins_below"]))
    labels = np.where(fake, 2, np.where(edited, 1, 0))
    return verdict_classes(classes, edit_rule), labels, unsure | possibly_edited(labels, edit, edit_rule)


def ranking_probabilities(p_fake, edit, cut) -> np.ndarray:
    """A two-part detector's (N, 3) scores in VERDICT_CLASSES order for ranking metrics (ROC-AUC): P(FAKE), and
    1 - P(FAKE) split between EDITED and REAL by `edit_evidence`. Not calibrated probabilities."""
    p_fake, e = np.asarray(p_fake), edit_evidence(edit, cut)
    return np.stack([(1 - p_fake) * (1 - e), (1 - p_fake) * e, p_fake], 1)


def verdict_fields(probs, classes, threshold=None, edit=None, edit_rule=None, outside=None, outside_cut=None) -> dict:
    """One image's verdict as predict reports it: {label, probability, probabilities, uncertain, outside,
    outside_score}, and with an edit rule also {p_fake, edit_score, edit_cut, possibly_edited, possible_cut}.
    `probs`: its (C,) probabilities;
    `probability` is P(positive) for two classes, else that of the chosen class; `outside`: its outside score
    (utils.inference.outside), `outside_cut` the cut above which the image is unlike anything the detector
    learned (`outside_score`: 1 at the cut)."""
    probs = np.asarray(probs)
    names, labels, unsure = verdicts(probs[None], classes, threshold, None if edit is None else [edit], edit_rule)
    own = int(decide(probs[None], threshold)[0])
    fields = dict(
        label=names[int(labels[0])],
        probability=float(probs[1] if len(classes) == 2 else probs[own]),
        probabilities={c: float(v) for c, v in zip(classes, probs)},
        uncertain=bool(unsure[0]),
        outside=None if outside is None else bool(outside > outside_cut),
        outside_score=None if outside is None else round(float(outside) / outside_cut, 4),
    )
    if edit_rule:
        fields.update(
            p_fake=float(probs[list(classes).index("FAKE")]),
            edit_score=round(float(edit), 4),
            edit_cut=edit_rule["cut"],
            possibly_edited=bool(possibly_edited(labels, [edit], edit_rule)[0]),
            possible_cut=edit_rule.get("possible_cut"),
        )
    return fields


def explained_class(r) -> str:
    """The class Grad-CAM explains for a verdict: a two-part detector's real-vs-fake answer (REAL for an EDITED
    verdict, which that part did not call FAKE), else the label."""
    if "edit_score" in r:
        return "FAKE" if r["label"] == "FAKE" else "REAL"
    return r["label"]


def score_rows(r) -> list:
    """[(name, value, bar in 0..1)] of one verdict's scores: a two-part detector's P(FAKE) and edit score (its bar
    `edit_evidence`), else each class's probability."""
    if "edit_score" in r:
        band = f", possibly edited from {r['possible_cut']:.3f}" if r.get("possible_cut") is not None else ""
        return [
            ("P(FAKE)", r["p_fake"], r["p_fake"]),
            (
                f"edit score (EDITED at {r['edit_cut']:.3f}{band})",
                r["edit_score"],
                float(edit_evidence(max(0.0, r["edit_score"]), r["edit_cut"])),
            ),
        ]
    return [(c, p, p) for c, p in r["probabilities"].items()]


def verdict_flags(r) -> list:
    """The flags one verdict carries, in the words every front door shows: possibly edited, uncertain, outside."""
    return [flag for flag, on in (("possibly edited", r.get("possibly_edited")), ("uncertain", r["uncertain"]),
                                  ("outside", r.get("outside"))) if on]


def verdict_title(r) -> str:
    """A picture's title for one verdict: its label and flags, e.g. "REAL (possibly edited, uncertain)"."""
    flags = verdict_flags(r)
    return r["label"] + (f" ({', '.join(flags)})" if flags else "")


def format_line(r) -> str:
    """One tab-separated line for one file's result: path, label, the probability (P(positive), P(FAKE) for a
    two-part detector, else the chosen class's), then the edit score or every class's probability, the flags
    (possibly edited, uncertain, outside) and the edit box; `path ERROR reason` for a file that could not be read,
    and `path
    SKIPPED reason` for one skipped in a folder."""
    if "error" in r:
        return f"{r['path']}\tERROR\t{r['error']}"
    if "skipped" in r:
        return f"{r['path']}\tSKIPPED\t{r['skipped']}"
    if "edit_score" in r:
        scores = f"\tedit_score={r['edit_score']:.4f}"
    elif len(r["probabilities"]) == 2:
        scores = ""
    else:
        scores = "\t" + " ".join(f"{c}={p:.4f}" for c, p in r["probabilities"].items())
    flags = "".join(f"\t{flag}" for flag in verdict_flags(r))
    box = f"\tedit_box={','.join(map(str, r['edit_box']))}" if r.get("edit_box") else ""
    return f"{r['path']}\t{r['label']}\t{r['probability']:.4f}{scores}{flags}{box}"

"""A two-part detector's networks joined into one checkpoint (models/two_part.py), and its edit rule.

`join(real_vs_fake, localiser)` takes two trained checkpoints: a REAL / FAKE classifier (its P(FAKE), threshold,
temperature, TTA and outside-what-I-know score are kept as they are) and an edit-map network trained with
`--edit-classes REAL,FAKE` (the localiser recipe). The joined checkpoint is an ordinary one (model `two_part`,
classes REAL, FAKE) plus `edit_rule`: how the map is pooled into an edit score, the cuts that call EDITED and
"possibly edited", and whether a strong edit wins over a middling P(FAKE). (utils.inference.checkpoint's
`localiser_of` takes the localiser back out of a joined checkpoint.)

Every choice is made on the localiser run's validation part, never on a test split. The cuts are a promise, so
they are fitted on what must not pass them: the unedited validation images, REAL and FAKE, each drawn under the
label-neutral changes training drew (`CUT_DRAWS` seeded draws), at the quantiles that let `FALSE_ALARM` (EDITED)
and `POSSIBLE_FALSE_ALARM` ("possibly edited") of them through. The edited validation images (the folder's own
EDITED, never trained on, and synthetic edits) give the recall each candidate buys.
"""
import numpy as np
import torch

from data.degradations import opt_in_kinds, robust_augment
from models import ImageClassifier, build_model, probabilities
from utils.inference.checkpoint import model_from_checkpoint
from utils.inference.evaluation import checkpoint_split
from utils.inference.scoring import run_with_map
from utils.inference.verdict import edit_score_parts, edit_scores, verdicts, weigh_evidence

FALSE_ALARM = 0.01           # the share of unedited images (REAL and FAKE, label-neutral changes drawn) called EDITED
POSSIBLE_FALSE_ALARM = 0.05  # ... and shown as "possibly edited" or EDITED
# the local evidence pools the map's most edited pixels, a region from 2x2 (about the smallest edit drawn) to 5x5
EDIT_SCORE_PIXELS = (4, 9, 16, 25)
# the whole-image evidence (the map's mean) is weighed against the local one: 0 (not used), or this many times
# the weight that gives both the same EDITED cut alone
WHOLE_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
# a strong edit score wins over P(FAKE) below this (None: FAKE is always asked first)
EDIT_WINS_BELOW = (None, 0.7, 0.9, 0.97)
CUT_SEED = 31
CUT_BATCH = 128        # the training batch size
CUT_DRAWS = 2          # seeded draws of the label-neutral changes over the validation images (2 x ~5,100 images)


def join(real_vs_fake: dict, localiser: dict) -> dict:
    """Two checkpoint dicts -> the two-part checkpoint (no `edit_rule` yet: `fit_edit_rule` adds it)."""
    if real_vs_fake["classes"] != ["REAL", "FAKE"]:
        raise ValueError(f"the real-vs-fake part must have classes REAL, FAKE, not {real_vs_fake['classes']}")
    parts = {"real_vs_fake": model_from_checkpoint(real_vs_fake), "localiser": model_from_checkpoint(localiser)}
    if not parts["localiser"].has_edit_map:
        raise ValueError(f"the localiser ({localiser['model_name']}) has no edit map")
    norm = real_vs_fake["normalization"]
    joined = ImageClassifier(build_model("two_part", 2), norm["mean"], norm["std"])
    joined.net.real_vs_fake.load_state_dict(parts["real_vs_fake"].net.state_dict())
    joined.net.localiser.load_state_dict(parts["localiser"].net.state_dict())
    joined.net.set_normalisations(norm["mean"], norm["std"], localiser["normalization"]["mean"],
                                  localiser["normalization"]["std"])
    describe = lambda ck: {k: ck.get(k) for k in ("model_name", "classes", "config", "epoch", "val_metrics",  # noqa: E731
                                                  "temperature", "tta", "provenance", "normalization")}
    return {**real_vs_fake, "model_name": "two_part",
            "state_dict": {k: v.detach().cpu() for k, v in joined.state_dict().items()},
            "parts": {"real_vs_fake": describe(real_vs_fake), "localiser": describe(localiser)}}


def validation_sets(localiser: dict) -> dict:
    """The localiser run's validation part, as the rule is fitted on it: `unedited` (REAL and FAKE under
    CUT_DRAWS draws of the training label-neutral changes, `unedited_labels` 0 / 2), `edited` (every edited
    image: the folder's own EDITED and the synthetic edits, `edited_labels`: 1 for an edited photograph, 2 for
    an edited generated image, still generated) and `own_edited` (the folder's own EDITED images: the user's
    edits, which no part trains on)."""
    folder, split = checkpoint_split(localiser)
    labels = torch.as_tensor(split.val_labels)
    edited = labels == split.classes.index("EDITED")
    source = np.asarray(folder.classes)[np.asarray(folder.labels)[split.val_idx]]  # the class before any edit
    robust = localiser["config"].get("robust") or 0.25
    gen = torch.Generator().manual_seed(CUT_SEED)
    unedited = split.val_images[~edited]
    # in batches, as training drew them: one strength per batch and kind, many strengths over the whole
    extra = opt_in_kinds(localiser["config"].get("robust_extra"))
    drawn = torch.cat([robust_augment(chunk, gen, robust, extra) for _ in range(CUT_DRAWS)
                       for chunk in unedited.split(CUT_BATCH)])
    unedited_labels = np.where(source[~edited.numpy()] == "FAKE", 2, 0)
    return {"unedited": drawn, "unedited_labels": np.tile(unedited_labels, CUT_DRAWS),
            "edited": split.val_images[edited], "edited_labels": np.where(source[edited.numpy()] == "FAKE", 2, 1),
            "own_edited": split.val_images[edited.numpy() & (source == "EDITED")]}


def fit_edit_rule(model, localiser: dict, threshold=None, false_alarm=FALSE_ALARM, possible=POSSIBLE_FALSE_ALARM,
                  pixels=EDIT_SCORE_PIXELS, whole_weights=WHOLE_WEIGHTS, device="cpu") -> dict:
    """The edit rule of a joined `model` (an ImageClassifier over two_part), chosen on the localiser run's
    validation part (`threshold`: the real-vs-fake part's, if it has one): for each region size and whole-image
    weight, the cuts at the (1 - false_alarm) and (1 - possible) quantiles of the unedited images' edit scores;
    the candidate whose EDITED cut finds the most edited images is kept (then the one whose "possibly edited"
    cut does). Then whether a strong edit wins over
    a middling P(FAKE): the `EDIT_WINS_BELOW` with the best balanced accuracy over REAL, EDITED, FAKE.
    -> the rule, with what it measured there."""
    sets = validation_sets(localiser)
    runs = {k: run_with_map(model, sets[k], device=device) for k in ("unedited", "edited", "own_edited")
            if len(sets[k])}
    maps = {k: m.numpy() for k, (_, m) in runs.items()}
    probs = {k: probabilities(logits).numpy() for k, (logits, _) in runs.items()}
    maps.setdefault("own_edited", np.zeros((0, *maps["unedited"].shape[1:]), np.float32))

    def share(scores, cut):  # None of no images
        return float(np.mean(scores >= cut)) if len(scores) else None

    by_candidate = {}
    for size in pixels:
        parts = {k: edit_score_parts(maps[k], size) for k in ("unedited", "edited", "own_edited")}
        local_cut, whole_cut = (np.quantile(p, 1 - false_alarm) for p in parts["unedited"])
        for relative in whole_weights:  # in units of the weight that gives the mean alone the local cut
            weight = float(relative * local_cut / whole_cut)
            neg, pos, own = (weigh_evidence(*parts[k], weight) for k in ("unedited", "edited", "own_edited"))
            cut, possible_cut = (float(np.quantile(neg, 1 - fa)) for fa in (false_alarm, possible))
            by_candidate[f"{size}px, whole {relative:g}x"] = dict(
                pixels=size, whole_weight=weight, cut=cut, possible_cut=possible_cut,
                called_edited=share(neg, cut), possibly_edited=share(neg, possible_cut), edited_recall=share(pos, cut),
                edited_recall_possible=share(pos, possible_cut), own_edited_recall=share(own, cut),
                own_edited_recall_possible=share(own, possible_cut))
    best = max(by_candidate, key=lambda k: (by_candidate[k]["edited_recall"],
                                            by_candidate[k]["edited_recall_possible"]))
    rule = {k: by_candidate[best][k] for k in ("pixels", "whole_weight", "cut", "possible_cut")}
    truth = np.concatenate([sets["unedited_labels"], sets["edited_labels"]])
    scores = np.concatenate([probs["unedited"], probs["edited"]])
    edit = edit_scores(np.concatenate([maps["unedited"], maps["edited"]]), rule["pixels"], rule["whole_weight"])
    by_order = {}
    for below in EDIT_WINS_BELOW:
        _, labels, _ = verdicts(scores, ["REAL", "FAKE"], threshold, edit, {**rule, "edit_wins_below": below})
        by_order[str(below)] = float(np.mean([np.mean(labels[truth == c] == c) for c in (0, 1, 2)]))
    below = max(EDIT_WINS_BELOW, key=lambda b: by_order[str(b)])  # the first of equals: FAKE first
    return {**rule, "edit_wins_below": below, "false_alarm": false_alarm, "possible_false_alarm": possible,
            "fit_on": f"the localiser's {len(sets['unedited']) // CUT_DRAWS} unedited validation images (REAL and "
                      f"FAKE), {CUT_DRAWS} draws of its training label-neutral changes; recall on its "
                      f"{len(sets['edited'])} edited validation images ({len(sets['own_edited'])} of them the "
                      f"folder's own EDITED)",
            "validation": {"unedited": int(len(sets["unedited"])), "edited": int(len(sets["edited"])),
                           "own_edited": int(len(sets["own_edited"])), **by_candidate[best],
                           "balanced_accuracy_by_edit_wins_below": by_order, "by_candidate": by_candidate}}


def two_part_checkpoint(real_vs_fake: dict, localiser: dict, device="cpu") -> dict:
    """join + fit_edit_rule: the shippable checkpoint."""
    ck = join(real_vs_fake, localiser)
    rule = fit_edit_rule(model_from_checkpoint(ck, device), localiser, ck.get("threshold"), device=device)
    return {**ck, "edit_rule": rule}

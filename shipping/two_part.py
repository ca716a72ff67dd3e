"""The default detector's two parts joined into one checkpoint (models/two_part.py), and its EDITED cut.

`join(real_vs_fake, localiser)` takes two trained checkpoints: a REAL / FAKE classifier (its P(FAKE), threshold,
temperature, TTA and outside-what-I-know score are kept as they are) and an edit-map network trained with
`--edit-classes REAL,FAKE` (the localiser recipe). The joined checkpoint is an ordinary one (model `two_part`,
classes REAL, FAKE) plus `edit_rule`: how the map is pooled into an edit score and the cut that calls EDITED.

The cut is a promise, so it is fitted on what must not pass it: the localiser's unedited validation images,
REAL and FAKE, each drawn under the label-neutral changes training drew (`CUT_DRAWS` seeded draws), at the
quantile that lets `FALSE_ALARM` of them through. The edited validation images give the recall it buys.
"""
import numpy as np
import torch

from data.degradations import opt_in_kinds, robust_augment
from models import ImageClassifier, build_model
from utils.inference.checkpoint import model_from_checkpoint
from utils.inference.evaluation import checkpoint_split
from utils.inference.scoring import run_with_map
from utils.inference.verdict import edit_scores

FALSE_ALARM = 0.01     # the share of unedited images (REAL and FAKE, label-neutral changes drawn) called EDITED
# the edit score pools the map's most edited pixels, a region from 2x2 (about the smallest edit drawn) to 5x5;
# the size that finds the most edited validation images at the promised false-alarm rate is kept
EDIT_SCORE_PIXELS = (4, 9, 16, 25)
CUT_SEED = 31
CUT_BATCH = 128        # the training batch size
CUT_DRAWS = 2          # seeded draws of the label-neutral changes over the validation images (2 x ~9,800 images)


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
                                                  "temperature", "tta", "provenance")}
    return {**real_vs_fake, "model_name": "two_part",
            "state_dict": {k: v.detach().cpu() for k, v in joined.state_dict().items()},
            "parts": {"real_vs_fake": describe(real_vs_fake), "localiser": describe(localiser)}}


def cut_images(localiser: dict):
    """-> (unedited validation images under the training label-neutral changes, edited validation images, and
    their masks) of the localiser's run."""
    _, split = checkpoint_split(localiser)
    labels = torch.as_tensor(split.val_labels)
    edited = labels == split.classes.index("EDITED")
    robust = localiser["config"].get("robust") or 0.25
    gen = torch.Generator().manual_seed(CUT_SEED)
    unedited = split.val_images[~edited]
    # in batches, as training drew them: one strength per batch and kind, many strengths over the whole
    extra = opt_in_kinds(localiser["config"].get("robust_extra"))
    drawn = torch.cat([robust_augment(chunk, gen, robust, extra) for _ in range(CUT_DRAWS)
                       for chunk in unedited.split(CUT_BATCH)])
    return drawn, split.val_images[edited], split.val_masks[edited]


def fit_edit_rule(model, localiser: dict, false_alarm=FALSE_ALARM, pixels=EDIT_SCORE_PIXELS, device="cpu") -> dict:
    """The edit rule of a joined `model` (an ImageClassifier over two_part): for each region size in `pixels`,
    the cut at the (1 - false_alarm) quantile of the unedited validation images' edit scores; the size whose
    cut finds the most edited validation images is kept. -> the rule, with what it measured there."""
    unedited, edited, _ = cut_images(localiser)
    maps = [run_with_map(model, x, device=device)[1].numpy() for x in (unedited, edited)]
    by_size = {}
    for size in pixels:
        negatives, positives = (edit_scores(m, size) for m in maps)
        cut = float(np.quantile(negatives, 1 - false_alarm))
        by_size[size] = {"cut": cut, "called_edited": float(np.mean(negatives >= cut)),
                         "edited_recall": float(np.mean(positives >= cut))}
    best = max(by_size, key=lambda k: by_size[k]["edited_recall"])
    return {"pixels": best, "cut": by_size[best]["cut"], "false_alarm": false_alarm,
            "fit_on": f"the localiser's {len(unedited) // CUT_DRAWS} unedited validation images (REAL and FAKE), "
                      f"{CUT_DRAWS} draws of its training label-neutral changes",
            "validation": {"unedited": int(len(unedited)), "edited": int(len(edited)), **by_size[best],
                           "by_pixels": {str(k): v for k, v in by_size.items()}}}


def two_part_checkpoint(real_vs_fake: dict, localiser: dict, device="cpu") -> dict:
    """join + fit_edit_rule: the shippable checkpoint."""
    ck = join(real_vs_fake, localiser)
    return {**ck, "edit_rule": fit_edit_rule(model_from_checkpoint(ck, device), localiser, device=device)}


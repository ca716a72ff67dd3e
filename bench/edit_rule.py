#!/usr/bin/env python
"""The edit rule two parts would get, before shipping them: join a real-vs-fake checkpoint with a localiser (a
run's checkpoint, or a shipped two-part detector, whose localiser is taken out of it) and fit the rule on the
localiser run's validation part as `ship.py` does (shipping/two_part.py). Prints every candidate's recall at the
EDITED cut and within "possibly edited", on all edited validation images and on the folder's own EDITED ones
(the user's edits, held out of every part), and the balanced accuracy of each way of joining the two answers.

    python bench/edit_rule.py --real-vs-fake runs/weights-two-part-edits/checkpoint.pt \\
        --localiser runs/weights-two-part-edits-localiser/checkpoint.pt     # or --localiser weights/two_part.pt
    python bench/edit_rule.py --real-vs-fake weights/real_vs_fake_robust.pt --localiser ... --save /tmp/joined.pt

The last line is the rule as one JSON object.
"""
import argparse
import json

from shipping.detectors import DETECTORS, fit_outside_for
from shipping.two_part import two_part_checkpoint
from utils.inference.checkpoint import DEFAULT_DETECTOR, load_checkpoint, localiser_of, save_checkpoint
from utils.inference.outside import FIT_VIEW


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real-vs-fake", required=True, help="a REAL / FAKE checkpoint")
    p.add_argument("--localiser", required=True, help="an edit-map checkpoint, or a two-part detector")
    p.add_argument("--save", metavar="PATH", help="also write the joined checkpoint, its outside score fitted as "
                   "ship.py fits --like's (for bench/real_photos.py, bench/edit_targets.py --checkpoint)")
    p.add_argument("--like", default=DEFAULT_DETECTOR, choices=[n for n, d in DETECTORS.items() if "outside" in d],
                   help="the shipped detector whose outside-score settings --save uses (default %(default)s)")
    args = p.parse_args()
    localiser = load_checkpoint(args.localiser)
    if localiser["model_name"] == "two_part":
        localiser = localiser_of(localiser)
    ck = two_part_checkpoint(load_checkpoint(args.real_vs_fake), localiser)
    rule = ck["edit_rule"]
    v = rule["validation"]
    print(f"fitted on {rule['fit_on']}")
    print("candidate: EDITED recall at the 1% cut / within possibly edited (5%), all edited | the folder's own")
    for name, c in v["by_candidate"].items():
        own = ("" if c["own_edited_recall"] is None
               else f"{c['own_edited_recall']:.3f} / {c['own_edited_recall_possible']:.3f}")
        print(f"{name:>18}: {c['edited_recall']:.3f} / {c['edited_recall_possible']:.3f} | {own}")
    print("balanced accuracy by edit_wins_below:", v["balanced_accuracy_by_edit_wins_below"])
    if args.save:
        spec = DETECTORS[args.like]
        ck["outside"] = fit_outside_for(ck, view=spec.get("outside_view", FIT_VIEW), **spec["outside"])
        save_checkpoint(ck, args.save)
        print(f"wrote {args.save}")
    print(json.dumps({k: val for k, val in rule.items() if k != "validation"}))


if __name__ == "__main__":
    main()

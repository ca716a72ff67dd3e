#!/usr/bin/env python
"""Does a detector find the edits the user named, at its false-alarm promise? Per shipped detector (and any
--checkpoint), on images no detector trained on (their source photos and the REAL and FAKE images beside them
may be in `train`, which real_vs_fake_robust trained on):

- held out: the seed's own EDITED images (train-real-edited/EDITED and train-fake-edited/EDITED, as gathered in
  train-edits) in the seeded validation part of train-edits (seed 0, 10%, an edited image on the side of its
  source photo): every shipped part that trains on train-edits validates on exactly this part, and
  real_vs_fake_robust trains on `train`, which holds no EDITED image. Their recall at the EDITED cut and within
  "possibly edited"; that part's unedited REAL and FAKE images called EDITED, and flagged either way;
- test-3class: balanced accuracy, REAL called EDITED, EDITED called FAKE, EDITED recall at both cuts, and by
  edit size (the share of pixels the edit changed against its source photo);
- test-families: recall by family of edit at both cuts (each family on 200 test photos);
- the demo: `predict.py --sample 4 --seed S images/test-3class` for S = 0..9, right of 12 and EDITED right of 4.

    python bench/edit_targets.py [--detector NAME ...] [--checkpoint PATH ...] [--seeds 10]

The last line is one JSON object with every figure.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from data import load_folder, resolve_split
from data.batches import training_split
from data.derived import edit_kinds, edit_masks
from shipping.detectors import DETECTORS, detector_path
from utils.inference.checkpoint import load_classifier
from utils.inference.files import sample_files
from utils.inference.predict import predict, score_images

SIZES = ((0, 0.02), (0.02, 0.1), (0.1, 0.5), (0.5, 1.01))  # the share of pixels an edit changed


def held_out(folder_name="train-edits", val_fraction=0.1, seed=0):
    """-> {EDITED, REAL, FAKE: uint8 images} of the seeded validation part of `folder_name`, as a run splits it."""
    folder = load_folder(resolve_split(folder_name), verbose=False)
    val = training_split(folder, val_fraction, seed).val_idx
    labels = np.asarray(folder.labels)[val]
    return {c: torch.from_numpy(folder.images[val[labels == folder.classes.index(c)]])
            for c in ("EDITED", "REAL", "FAKE")}


def flags(classifier, images):
    """-> (verdict names (N,), called EDITED or possibly edited (N,) bool)."""
    s = score_images(classifier, images)
    names = np.asarray(s["classes"])[s["predictions"]]
    return names, (names == "EDITED") | s["possibly_edited"]


def rates(names, flagged, mask=None):
    mask = np.ones(len(names), bool) if mask is None else mask
    n = int(mask.sum())
    return {"n": n, "edited": float(np.mean(names[mask] == "EDITED")) if n else None,
            "edited_or_possibly": float(np.mean(flagged[mask])) if n else None,
            "fake": float(np.mean(names[mask] == "FAKE")) if n else None}


def measure(classifier, sets, test3, families, seeds) -> dict:
    out = {"held_out": {c: rates(*flags(classifier, x)) for c, x in sets.items()}}
    folder, masks, kinds = test3
    names, flagged = flags(classifier, folder.images)
    truth = np.asarray(folder.classes)[folder.labels]
    out["test_3class"] = {c: rates(names, flagged, truth == c) for c in ("REAL", "EDITED", "FAKE")}
    out["test_3class"]["balanced_accuracy"] = float(np.mean([np.mean(names[truth == c] == c)
                                                             for c in ("REAL", "EDITED", "FAKE")]))
    share = masks.reshape(len(masks), -1).mean(1)
    out["test_3class_by_size"] = {f"{lo:.0%}-{min(hi, 1):.0%}": rates(names, flagged, (truth == "EDITED") &
                                                                         (share >= lo) & (share < hi))
                                  for lo, hi in SIZES}
    fam_folder, fam_kinds = families
    names, flagged = flags(classifier, fam_folder.images)
    fam_kinds = np.array([k or "" for k in fam_kinds])
    out["families"] = {k: rates(names, flagged, fam_kinds == k) for k in sorted(set(fam_kinds) - {""})}
    out["families"]["unedited REAL"] = rates(names, flagged, fam_kinds == "")
    demo = []
    for s in range(seeds):
        drawn = sample_files(resolve_split("test-3class"), 4, s)
        rows = list(predict(classifier, [p for p, _ in drawn]))
        right = [r.get("label") == c for r, (_, c) in zip(rows, drawn)]
        demo.append({"seed": s, "right": int(sum(right)),
                     "edited_right": int(sum(ok for ok, (_, c) in zip(right, drawn) if c == "EDITED"))})
    out["demo"] = {"seeds": demo, "mean_right": float(np.mean([d["right"] for d in demo])),
                   "mean_edited_right": float(np.mean([d["edited_right"] for d in demo]))}
    return out


def pct(x):
    return "" if x is None else f"{100 * x:.1f}%"


def report(name, m) -> str:
    h, t = m["held_out"], m["test_3class"]
    lines = [f"== {name}",
             f"held-out seed EDITED ({h['EDITED']['n']}): recall {pct(h['EDITED']['edited'])}, with possibly edited "
             f"{pct(h['EDITED']['edited_or_possibly'])}, called FAKE {pct(h['EDITED']['fake'])}; beside them REAL "
             f"({h['REAL']['n']}) called EDITED {pct(h['REAL']['edited'])} "
             f"(flagged {pct(h['REAL']['edited_or_possibly'])}), "
             f"FAKE ({h['FAKE']['n']}) {pct(h['FAKE']['edited'])} ({pct(h['FAKE']['edited_or_possibly'])})",
             f"test-3class: balanced {pct(t['balanced_accuracy'])}, REAL called EDITED {pct(t['REAL']['edited'])} "
             f"(flagged {pct(t['REAL']['edited_or_possibly'])}), EDITED called FAKE {pct(t['EDITED']['fake'])}, "
             f"EDITED recall {pct(t['EDITED']['edited'])} "
             f"(with possibly edited {pct(t['EDITED']['edited_or_possibly'])})",
             "  by edit size: " + ", ".join(f"{k} {pct(v['edited'])} / {pct(v['edited_or_possibly'])} (of {v['n']})"
                                           for k, v in m["test_3class_by_size"].items()),
             "  test-families, recall at the EDITED cut / with possibly edited: "
             + ", ".join(f"{k} {pct(v['edited'])} / {pct(v['edited_or_possibly'])}" for k, v in m["families"].items()),
             f"demo over {len(m['demo']['seeds'])} seeds: {m['demo']['mean_right']:.1f} of 12 right, EDITED "
             f"{m['demo']['mean_edited_right']:.1f} of 4 (" + " ".join(f"{d['right']}/{d['edited_right']}"
                                                                       for d in m["demo"]["seeds"]) + ")"]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", action="append", help="shipped detectors to measure (default: every one that "
                                                       "calls EDITED)")
    p.add_argument("--checkpoint", action="append", default=[], help="another checkpoint to measure (repeatable)")
    p.add_argument("--seeds", type=int, default=10, help="demo draws (seeds 0..N-1)")
    args = p.parse_args()
    names = args.detector or [n for n in DETECTORS if n != "real_vs_fake_robust" and detector_path(n).is_file()]
    detectors = {n: detector_path(n) for n in names} | {c: Path(c) for c in args.checkpoint}
    sets = held_out()
    folder = load_folder(resolve_split("test-3class"), verbose=False)
    test3 = (folder, edit_masks(folder)[0], edit_kinds(folder))
    fam = load_folder(resolve_split("test-families"), verbose=False)
    results = {}
    for name, path in detectors.items():
        results[name] = measure(load_classifier(path), sets, test3, (fam, edit_kinds(fam)), args.seeds)
        print(report(name, results[name]) + "\n", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

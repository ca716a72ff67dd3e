#!/usr/bin/env python
"""Which "outside what I know" score to ship (utils/inference/outside.py): each candidate fitted on the real-vs-fake
run's training images as its batches showed them, its cut at the 97.5% quantile of one half of that run's validation
images, and judged on data made here, never on the real-photo bench or a test split:

- inside: the other half of the validation images;
- outside, made from those same images by changing what a picture holds, not how its file was saved:
  `mosaic` (an image and its mirror images, 2x2, shrunk into one: four times the detail a pixel, as a large
  photo shrunk to 32x32) and `zoom` (the centre 16x16 enlarged: a crop of a larger picture, less detail a pixel).

Candidates, each fitted as ship() would fit it (utils.inference.outside.fit_outside): the real-vs-fake part's
activations (the score before), with the noise-residual spectrum (`residual_features`), both parts' activations (the
localiser's too), and all of them. Prints the share of each set above the cut and the ROC-AUC (inside against
each outside set); the candidate with the best mean ROC-AUC is named; the last line is JSON.

    python bench/outside.py [--detector two_part | --checkpoint CK] [--fit-images 8000]
"""
import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from shipping.detectors import detector_path
from utils.inference.checkpoint import load_classifier
from utils.inference.evaluation import checkpoint_split
from utils.inference.outside import fit_outside, outside_scores, training_view

SEED = 5


def mosaic(x):
    """Each image beside its mirror images (2x2, seamless: a mirrored edge continues the picture), shrunk to
    32x32: four times the detail a pixel, with no seam for an edit detector to find (four different images
    side by side showed one, and every score that read the localiser called them all outside)."""
    wide = torch.cat([x, x.flip(3)], 3)
    tiled = torch.cat([wide, wide.flip(2)], 2).float()
    return F.interpolate(tiled, size=32, mode="bilinear", antialias=True, align_corners=False).round().clamp(
        0, 255).to(torch.uint8)


def zoom(x):
    centre = x[:, :, 8:24, 8:24].float()
    return F.interpolate(centre, size=32, mode="bicubic", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", default="two_part", help="a shipped detector's name")
    p.add_argument("--checkpoint", help="or any checkpoint (e.g. a two-part one before it is shipped)")
    p.add_argument("--fit-images", type=int, default=8000)
    args = p.parse_args()
    model, ck = load_classifier(args.checkpoint or detector_path(args.detector))
    folder, split = checkpoint_split(ck)  # the real-vs-fake part's run: its training and validation images
    rng = np.random.default_rng(SEED)
    idx = np.sort(rng.permutation(split.train_idx)[:args.fit_images])
    fit = training_view(torch.as_tensor(np.asarray(folder.images[idx])), np.asarray(folder.labels)[idx], ck["config"],
                        split.classes, SEED)
    order = torch.from_numpy(rng.permutation(len(split.val_images)))
    half = len(order) // 2
    cut_part, inside = split.val_images[order[:half]], split.val_images[order[half:]]
    sets = {"inside": inside, "mosaic": mosaic(inside), "zoom": zoom(inside)}
    candidates = {"real-vs-fake activations (before)": dict(with_map=False, residual=False),
                  "real-vs-fake activations + residual spectrum": dict(with_map=False, residual=True)}
    if model.has_edit_map:
        candidates.update({"both parts' activations": dict(with_map=True, residual=False),
                           "both parts + residual spectrum": dict(with_map=True, residual=True)})
    result = {}
    print(f"fit on {len(fit)} training-view images; cut on {half} validation images; inside: {len(inside)}, "
          f"mosaic {len(sets['mosaic'])}, zoom {len(sets['zoom'])}")
    print(f"{'candidate (as shipped: utils/inference/outside.py)':46s} {'inside out':>10s} {'mosaic out':>10s} "
          f"{'AUC':>6s} {'zoom out':>9s} {'AUC':>6s}")
    for name, features in candidates.items():
        stats = fit_outside(model, fit, cut_part, **features)  # the cut: the 97.5% quantile of cut_part
        score = {s: outside_scores(model, stats, x) for s, x in sets.items()}
        row = {"inside_outside": float(np.mean(score["inside"] > stats["threshold"]))}
        for s in ("mosaic", "zoom"):
            y = np.r_[np.zeros(len(score["inside"])), np.ones(len(score[s]))]
            row[f"{s}_outside"] = float(np.mean(score[s] > stats["threshold"]))
            row[f"{s}_auc"] = float(roc_auc_score(y, np.r_[score["inside"], score[s]]))
        row["mean_auc"] = (row["mosaic_auc"] + row["zoom_auc"]) / 2
        result[name] = row
        print(f"{name:46s} {row['inside_outside']:10.1%} {row['mosaic_outside']:10.1%} {row['mosaic_auc']:6.3f} "
              f"{row['zoom_outside']:9.1%} {row['zoom_auc']:6.3f}")
    best = max(result, key=lambda k: result[k]["mean_auc"])  # separates best, whatever the cut
    print(f"separates best (mean ROC-AUC over the made outside sets, {result[best]['mean_auc']:.3f}): {best}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

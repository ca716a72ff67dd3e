#!/usr/bin/env python
"""Which "outside what I know" score to ship (utils/outside.py): each candidate fitted on the real-vs-fake run's
training images as its batches showed them, its cut at the 97.5% quantile of one half of that run's validation
images, and judged on data made here, never on the real-photo bench or a test split:

- inside: the other half of the validation images;
- outside, made from those same images by changing what a picture holds, not how its file was saved:
  `mosaic` (four images shrunk into one: a scene with four times the detail, as a large photo shrunk to
  32x32) and `zoom` (the centre 16x16 enlarged: a crop of a larger picture, less detail a pixel).

Candidates: the real-vs-fake part's activations (today's score), the noise-residual spectrum alone
(`residual_features`), both, both parts' activations (the localiser's too), and all of them. Prints ROC-AUC
(inside vs each outside set) and the share of each outside set above the cut; the last line is JSON.

    python bench/outside.py [--detector two_part | --checkpoint CK] [--fit-images 8000]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.metrics import roc_auc_score  # noqa: E402

from utils.checkpoint import load_classifier  # noqa: E402
from utils.inference import checkpoint_split  # noqa: E402
from utils.outside import OUTSIDE_QUANTILE, _distances, fit_outside, layer_features, training_view  # noqa: E402
from utils.shipping import detector_path  # noqa: E402

SEED = 5


def mosaic(x):
    small = F.interpolate(x.float(), scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
    n = len(small) // 4 * 4
    q = small[:n].view(n // 4, 4, 3, 16, 16)
    rows = [torch.cat([q[:, 0], q[:, 1]], 3), torch.cat([q[:, 2], q[:, 3]], 3)]
    return torch.cat(rows, 2).round().clamp(0, 255).to(torch.uint8)


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
    columns = {}  # candidate part -> {set: (N,) score}, each fitted once
    for with_map in (False, True) if model.has_edit_map else (False,):
        stats = fit_outside(model, fit, cut_part, with_map=with_map, residual=not with_map)
        for name, x in {"cut": cut_part, **sets}.items():
            d = _distances(layer_features(model, x, with_map=with_map, residual=not with_map), stats)
            groups = list(stats["groups"])
            activations = [k for k, g in enumerate(groups) if g != "residual"]
            key = "both parts' activations" if with_map else "real-vs-fake activations"
            columns.setdefault(key, {})[name] = d[:, activations].max(1)
            if "residual" in groups:
                columns.setdefault("noise-residual spectrum", {})[name] = d[:, groups.index("residual")]
    candidates = {k: [k] for k in columns}
    candidates["real-vs-fake activations + residual"] = ["real-vs-fake activations", "noise-residual spectrum"]
    if "both parts' activations" in columns:
        candidates["both parts + residual"] = ["both parts' activations", "noise-residual spectrum"]
    result = {}
    print(f"fit on {len(fit)} training-view images; cut on {half} validation images; inside: {len(inside)}, "
          f"mosaic {len(sets['mosaic'])}, zoom {len(sets['zoom'])}")
    print(f"{'candidate':40s} {'inside out':>10s} {'mosaic out':>10s} {'AUC':>6s} {'zoom out':>9s} {'AUC':>6s}")
    for name, parts in candidates.items():
        # each part divided by its own cut, so that no part's scale decides the maximum
        cuts = {k: np.quantile(columns[k]["cut"], OUTSIDE_QUANTILE) for k in parts}
        score = {s: np.max([columns[k][s] / cuts[k] for k in parts], 0) for s in ["cut", *sets]}
        cut = np.quantile(score["cut"], OUTSIDE_QUANTILE)
        row = {"inside_outside": float(np.mean(score["inside"] > cut))}
        for s in ("mosaic", "zoom"):
            y = np.r_[np.zeros(len(score["inside"])), np.ones(len(score[s]))]
            row[f"{s}_outside"] = float(np.mean(score[s] > cut))
            row[f"{s}_auc"] = float(roc_auc_score(y, np.r_[score["inside"], score[s]]))
        result[name] = row
        print(f"{name:40s} {row['inside_outside']:10.1%} {row['mosaic_outside']:10.1%} {row['mosaic_auc']:6.3f} "
              f"{row['zoom_outside']:9.1%} {row['zoom_auc']:6.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

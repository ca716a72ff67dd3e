#!/usr/bin/env python
"""False alarms on real photographs from other sources than CIFAR (data/real_photos.py: sample photos that
install with registry packages), for the shipped detectors: how often a real photo is called FAKE or EDITED.

Each photo is scored as predict.py scores it (the centred square, shrunk to 32x32: scale 1) and, to show what
that shrinking does, as squares of a half, a quarter and an eighth of its shorter side and as 32x32 pixel crops
taken without any resizing (up to 16 a photo at each scale, across the whole photo). For evaluation only: no
training, threshold or choice is made on these photos. docs/model-card.md quotes the table; the last line is
one JSON object: the first detector's (the default's) whole-photo figures at the top level (photos, sources,
called_real, outside, called_real_or_outside, called_edited, confident_fake: called FAKE with probability >= 0.9,
and the last two among the verdicts given without an outside warning), every table under "detectors".

    python bench/real_photos.py [--detectors three_class,real_vs_fake_robust] [--checkpoint PATH ...]
"""
import argparse
import collections
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from data.degradations import jpeg
from data.images import open_rgb, square_view
from data.real_photos import listed_photos, real_photo_files, tiles
from shipping.detectors import DETECTORS, detector_path
from utils.inference.checkpoint import DEFAULT_DETECTOR, load_classifier
from utils.inference.metrics import wilson_interval
from utils.inference.outside import outside_scores
from utils.inference.predict import predict, score_images
from utils.reporting.bias import bias_images

SCALES = {"whole photo (predict.py)": 1.0, "halves (1/2 of the short side)": 0.5, "quarters (1/4)": 0.25,
          "1/8": 0.125, "32x32 crops, no resizing": 0.0}
# a probe, not a fix: the whole-photo view saved as a 32x32 JPEG at quality 75, the compression every CIFAKE
# REAL and FAKE file has (its quantisation tables) and the test's EDITED images lack (quality 95)
AS_CIFAKE = "whole photo, then JPEG 75 at 32x32"


def views(photos):
    """-> {scale name: uint8 views (N, 3, 32, 32)}, each photo's in order."""
    out = collections.defaultdict(list)
    for _, path in photos:
        im = open_rgb(path)
        for name, fraction in SCALES.items():
            out[name] += [square_view(im, box) for box in tiles(*im.size, fraction if fraction else 32 / min(im.size))]
    out = {k: np.stack(v).transpose(0, 3, 1, 2) for k, v in out.items()}
    out[AS_CIFAKE] = jpeg(torch.from_numpy(out[next(iter(SCALES))]), 75).numpy()
    return out


def rates(labels, classes, uncertain, probs, outside) -> dict:
    """Shares of the views given each label, uncertain, outside what the detector knows (None: it has no such
    score), called REAL or outside, and called FAKE with probability >= 0.9."""
    n = len(labels)
    labels = np.asarray(labels)
    fake = classes.index("FAKE") if "FAKE" in classes else None
    sure_fake = (labels == "FAKE") & (probs[:, fake] >= 0.9) if fake is not None else np.zeros(n, bool)
    inside = np.ones(n, bool) if outside is None else ~np.asarray(outside)
    row = {"n": n, "uncertain": float(np.mean(uncertain)),
           "outside": None if outside is None else float(np.mean(outside)),
           "real_or_outside": float(np.mean((labels == "REAL") | ~inside)),
           "confident_fake": float(np.mean(sure_fake)),
           # the verdicts given without an outside warning: what a user would take at its word
           "edited_not_outside": float(np.mean((labels == "EDITED") & inside)),
           "confident_fake_not_outside": float(np.mean(sure_fake & inside))}
    for c in classes:
        k = int(np.sum(np.asarray(labels) == c))
        low, high = wilson_interval(k, n)
        row[c] = {"rate": k / n, "ci95": [round(low, 3), round(high, 3)]}
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shipped = [DEFAULT_DETECTOR, *(n for n in DETECTORS if n != DEFAULT_DETECTOR)]
    p.add_argument("--detectors", default=",".join(shipped),
                   help="shipped detectors, the default first (its figures are the last line's top level)")
    p.add_argument("--checkpoint", action="append", default=[], help="another checkpoint to measure (repeatable)")
    args = p.parse_args()
    detectors = {n: (detector_path(n), DETECTORS[n]["what"]) for n in args.detectors.split(",") if n}
    detectors |= {c: (Path(c), "a checkpoint") for c in args.checkpoint}
    if not detectors:
        p.error("nothing to measure: name --detectors or a --checkpoint")
    photos, missing = real_photo_files()
    by_source = collections.Counter(source for source, _ in photos)
    not_found = sum(len(m["files"]) for m in missing.values())
    print(f"{len(photos)} of {listed_photos()} listed photos found: "
          + ", ".join(f"{s} {n}" for s, n in by_source.items())
          + "".join(f"; {len(m['files'])} of {s} not found ({m['install']}; `make bench-deps` installs every source)"
                    for s, m in missing.items()))
    all_views = views(photos)
    first_scale = next(iter(SCALES))
    result = {"by_source": dict(by_source), "missing": missing, "detectors": {}}
    for name, (path, what) in detectors.items():
        model, ck = load_classifier(path)
        # scale 1 through predict.py's own path, and the same views in memory must agree with it
        from_files = list(predict((model, ck), [p for _, p in photos], device="cpu"))
        table = {}
        for scale, x in all_views.items():
            scored = score_images((model, ck), x)
            classes, probs = scored["classes"], scored["probs"]
            labels = [classes[k] for k in scored["predictions"]]
            uncertain = scored["uncertain"]
            outside = (outside_scores(model, ck["outside"], torch.from_numpy(x)) > ck["outside"]["threshold"]
                       if ck.get("outside") else None)
            table[scale] = rates(labels, classes, uncertain, probs, outside)
            if SCALES.get(scale) == 1.0:
                assert labels == [r["label"] for r in from_files], "in-memory views differ from predict.py's"
                assert outside is None or list(outside) == [r["outside"] for r in from_files]
                table[scale]["per_photo"] = {f"{source}/{Path(p).name}": (r["label"], round(r["probability"], 3),
                                                                          r["outside"])
                                             for (source, p), r in zip(photos, from_files)}
        if ck.get("outside"):  # how well the score tells CIFAKE test images from these photos (a report only)
            cifake = bias_images(per_class=500)[0]
            scores = [outside_scores(model, ck["outside"], v)
                      for v in (cifake, torch.from_numpy(all_views[first_scale]))]
            table["outside_roc_auc"] = float(roc_auc_score(np.r_[np.zeros(len(scores[0])), np.ones(len(scores[1]))],
                                                           np.r_[scores[0], scores[1]]))
            table["cifake_test_outside"] = float(np.mean(scores[0] > ck["outside"]["threshold"]))
        result["detectors"][name] = table
        print(f"\n== {name} ({what})")
        print(f"{'scale':34s} {'n':>4s} " + " ".join(f"{c:>16s}" for c in scored["classes"])
              + "  uncertain  outside  REAL|outside  FAKE>=0.9  EDITED,inside  FAKE>=0.9,inside")
        for scale, row in ((k, v) for k, v in table.items() if k in all_views):
            out = "-" if row["outside"] is None else f"{row['outside']:.1%}"
            print(f"{scale:34s} {row['n']:4d} " + " ".join(
                f"{row[c]['rate']:6.1%} [{row[c]['ci95'][0]:.2f}-{row[c]['ci95'][1]:.2f}]" for c in scored["classes"])
                  + f"  {row['uncertain']:9.1%}  {out:>7s}  {row['real_or_outside']:12.1%}  "
                  f"{row['confident_fake']:9.1%}"
                  f"  {row['edited_not_outside']:13.1%}  {row['confident_fake_not_outside']:16.1%}")
        if "outside_roc_auc" in table:
            print(f"outside score: {table['cifake_test_outside']:.1%} of 1,000 CIFAKE test images outside; ROC-AUC "
                  f"{table['outside_roc_auc']:.3f} between them and the whole photos")
        print("whole photos: " + ", ".join(f"{k} {v[0]} {v[1]:.2f}{' outside' if v[2] else ''}"
                                           for k, v in table[first_scale]["per_photo"].items()))
    first = next(iter(result["detectors"].values()))[first_scale]
    summary = {"photos": len(photos), "photos_not_found": not_found, "sources": len(by_source),
               "called_real": first["REAL"]["rate"],
               "outside": first["outside"], "called_real_or_outside": first["real_or_outside"],
               "called_edited": first.get("EDITED", {}).get("rate", 0.0), "confident_fake": first["confident_fake"],
               "called_edited_not_outside": first["edited_not_outside"],
               "confident_fake_not_outside": first["confident_fake_not_outside"]}
    print(json.dumps({**summary, **result}))


if __name__ == "__main__":
    main()

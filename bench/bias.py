#!/usr/bin/env python
"""The bias table: how far label-neutral changes of whole images (data.degradations.BIAS_CHANGES: re-encodings,
resampling, filters, tone curves, noise; some never drawn in training, marked "unseen") move the verdicts on
REAL and FAKE test images, for the shipped detectors (and any --checkpoint). An EDITED verdict counts as wrong:
a REAL or FAKE image called EDITED after a whole-image change is a false edit alarm.

Per change: real-vs-fake accuracy, the share called EDITED, the share of verdicts moved from the clean ones and,
per true class, where they went (REAL/EDITED/FAKE shares). The last line is one JSON object: the default
detector's worst_real_vs_fake_accuracy, max_called_edited and changes at the top level, every detector's table
under "detectors". ship.py writes the same table into each shipped card.

    python bench/bias.py [--per-class 1000] [--checkpoint runs/X/checkpoint.pt ...]
"""
import argparse
import json
from pathlib import Path

from shipping.detectors import DETECTORS, detector_path
from utils.inference.checkpoint import DEFAULT_DETECTOR
from utils.reporting.bias import PER_CLASS, bias_images, bias_table, format_bias_table


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=PER_CLASS, help="REAL and FAKE test images each (seeded sample)")
    p.add_argument("--test-path", default="test")
    p.add_argument("--checkpoint", action="append", default=[], help="another detector to measure (repeatable)")
    args = p.parse_args()
    images, truth = bias_images(args.test_path, args.per_class)
    detectors = {name: detector_path(name) for name in DETECTORS if detector_path(name).is_file()}
    detectors.update({c: Path(c) for c in args.checkpoint})
    tables = {}
    for name, path in detectors.items():
        tables[name] = bias_table(path, images, truth)
        print(format_bias_table(tables[name], name) + "\n", flush=True)
    if DEFAULT_DETECTOR in tables and "real_vs_fake_robust" in tables:
        gaps = {k: tables[DEFAULT_DETECTOR]["changes"][k]["accuracy"] - r["accuracy"]
                for k, r in tables["real_vs_fake_robust"]["changes"].items()}
        worst = min(gaps, key=gaps.get)
        print(f"{DEFAULT_DETECTOR} against real_vs_fake_robust: worst gap {gaps[worst] * 100:+.2f} points ({worst})")
    slim = {name: {k: t[k] for k in ("n", "worst_real_vs_fake_accuracy", "worst_change", "max_called_edited")}
            | {"changes": {c: {"accuracy": r["accuracy"], "called_edited": r["called_edited"], "moved": r["moved"],
                                "trained": r["trained"], "trained_by": r["trained_by"]}
                            for c, r in t["changes"].items()},
               "clean_accuracy": t["clean"]["accuracy"]} for name, t in tables.items()}
    default = slim.get(DEFAULT_DETECTOR) or next(iter(slim.values()))
    print(json.dumps({**{k: default[k] for k in ("worst_real_vs_fake_accuracy", "max_called_edited", "changes")},
                      "detectors": slim}))


if __name__ == "__main__":
    main()

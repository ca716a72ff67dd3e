#!/usr/bin/env python
"""Unpack a dataset into images/ (the seed's base_path) and build the decoded caches of its splits.

SOURCE: the shipped archive (default: ../shared/datasets/cifake-seed.tar.gz when it exists), a Kaggle-style
CIFAKE zip or folder (train/REAL, train/FAKE, test/...), or any folder of <split>/<CLASS>/<images>.
Splits already in images/ are kept as they are.
"""
import argparse

from data import DataError, default_data_root, load_folder, prepare
from data.perturbed import PERTURBATIONS, build_perturbed_split, perturbed_name
from data.sources import list_splits
from utils import cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", help="archive or folder (default: the shipped archive)")
    p.add_argument("--data-root", default=None, help="where splits go (default images/ in the repo, or $AIC_DATA_ROOT)")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="only unpack; decode each split on first use instead")
    p.add_argument("--perturb", metavar="SPLIT", action="append", default=[],
                   help="also write perturbed copies of SPLIT for the robustness table: "
                        + ", ".join(f"SPLIT-{k} ({w})" for k, (w, _) in PERTURBATIONS.items())
                        + "; repeatable (evaluate.py --robustness makes them on first use too)")
    args = p.parse_args(argv)
    root = args.data_root or default_data_root()
    splits = prepare(args.source, root)
    for base in args.perturb:
        for kind in PERTURBATIONS:
            if not build_perturbed_split(root, perturbed_name(base, kind)):
                raise DataError(f"--perturb {base}: no split {base} under {root}")
        splits = list_splits(root)
    print(f"splits in {root}: {', '.join(splits)}")
    if args.cache:
        for split in splits:
            load_folder(f"{root}/{split}")
    return 0


if __name__ == "__main__":
    cli.run(main)

#!/usr/bin/env python
"""Unpack a dataset into images/ (the seed's base_path), make every derived split, and build the decoded caches.

SOURCE: the shipped archive (default: ../shared/datasets/cifake-seed.tar.gz when it exists), a Kaggle-style
CIFAKE zip or folder (train/REAL, train/FAKE, test/...), or any folder of <split>/<CLASS>/<images>.
Splits already in images/ are kept; derived splits (edited, three-class, perturbed copies of `test`, and
`other-photos` where Debian's opencv-doc is installed) are made once, and made again only when the code that makes
them has changed.
"""
import argparse
import sys

from data import default_data_root, load_folder, other_photos, prepare
from data.degradations import TEST_COPIES, describe_copy
from data.images import RESIZE_MODES, default_resize
from utils import cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", help="archive or folder (default: the shipped archive)")
    p.add_argument("--data-root", default=None, help="where splits go (default images/ in the repo, or $AIC_DATA_ROOT)")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="only unpack and derive; decode each split on first use instead")
    p.add_argument("--image-size", type=int, default=32, metavar="N",
                   help="build the caches for a run at this size (default %(default)s; train.py --image-size)")
    p.add_argument("--resize", choices=RESIZE_MODES,
                   help="and bring each image to it this way (crop: its own pixels; default: crop, except at 32, "
                        "CIFAKE's size, where shrink, as train.py)")
    p.add_argument("--perturb", metavar="SPLIT", action="append", default=[],
                   help="also write perturbed copies of SPLIT for the robustness table (those of test always are): "
                        + ", ".join(f"SPLIT-{k} ({describe_copy(k)})" for k in TEST_COPIES) + "; repeatable")
    args = p.parse_args(argv)
    root = args.data_root or default_data_root()
    splits = prepare(args.source, root, perturb=args.perturb)
    # the edit localiser's unedited photographs from elsewhere (made only where Debian's opencv-doc is installed)
    made = other_photos.build_other_photos(root, log=lambda line: print(line, file=sys.stderr))
    if made and other_photos.SPLIT not in splits:
        splits.append(other_photos.SPLIT)
    print(f"splits in {root}: {', '.join(splits)}")
    if args.cache:
        for split in splits:
            load_folder(f"{root}/{split}", image_size=args.image_size,
                        resize=args.resize or default_resize(args.image_size))
    return 0


if __name__ == "__main__":
    cli.run(main)

#!/usr/bin/env python
"""Write every picture of a checkpoint on a test split as PNG files: training curves (from the run folder's
history.json), confusion matrix, ROC, 2x2 prediction grids per class and at random, the most confident
mistakes of each class, and Grad-CAM overlays. Frames: green right, red wrong. On edited test sets a yellow
box outlines the true edit; a model with an edit map draws its map in magenta over every grid, and
edit_maps.png shows it on eight EDITED images.

For two classes REAL is the negative class; titles show the predicted class and its probability.
"""
import argparse

from utils import cli
from utils.reporting.report import write_report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train.py")
    p.add_argument("--test-path", default="test", help="split name under images/ or a <CLASS>/ folder tree")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--run-dir", help="run folder with history.json (default: the checkpoint's folder)")
    p.add_argument("--n", type=int, default=4, help="images per grid (default 4: a 2x2 grid)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random examples")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    for path in write_report(args.checkpoint, args.test_path, args.out, args.run_dir, args.n, args.seed,
                             args.device):
        print(path)


if __name__ == "__main__":
    cli.run(main)

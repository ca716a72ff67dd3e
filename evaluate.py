#!/usr/bin/env python
"""Evaluate a checkpoint on a split or folder: accuracy, balanced accuracy, precision, recall, F1, ROC-AUC,
confusion matrix, per-class accuracy, n and images/s.

For two classes REAL is negative and precision/recall/F1 are those of the positive class (FAKE or EDITED).
A folder holding one class only (say, fakes from another generator) gets its detection rate and a 95% interval.
"""
import argparse
import json
import sys

from data.images import RESIZE_MODES, default_resize
from models import TTA_MODES
from utils import cli
from utils.inference.checkpoint import load_classifier
from utils.inference.evaluation import evaluate, robustness, validation_robustness
from utils.inference.metrics import format_metrics, format_robustness
from utils.inference.scoring import select_device
from utils.training.calibration import refit_temperature
from utils.training.provenance import describe


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train.py")
    p.add_argument("--test-path", default="test", help="split name under images/ or a <CLASS>/ folder tree "
                                                       "(default %(default)s)")
    p.add_argument("--batch-size", type=int, help="images a forward pass (default: 64 on a CPU, where small "
                                                  "batches stay in cache, 1024 on a GPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--jpeg-quality", type=int, metavar="Q",
                   help="also re-save every test image as JPEG at quality Q and report the accuracy change "
                        "(the JPEG-shortcut check)")
    p.add_argument("--robustness", action="store_true",
                   help="instead: a table over the test split and its perturbed copies (<split>-jpeg75, -jpeg50, "
                        "-resize, -blur, -noise, -flip; prepare.py writes those of test, `prepare.py --perturb "
                        "SPLIT` those of another split)")
    p.add_argument("--validation", action="store_true",
                   help="with --robustness: the checkpoint's own validation images instead of a test split, each "
                        "degradation applied in memory (compare robust-training settings here, not on test)")
    p.add_argument("--tta", choices=TTA_MODES,
                   help="test-time augmentation instead of the checkpoint's own; the temperature is refitted for it "
                        "on the checkpoint's validation split (or the scores are said to be uncalibrated)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="score the images at this size instead of the checkpoint's own (a network that pools "
                        "globally takes any size)")
    p.add_argument("--resize", choices=RESIZE_MODES,
                   help="and bring them to it this way instead of the checkpoint's (with --image-size N alone: crop, "
                        "except at 32, where shrink, as train.py)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    args = p.parse_args(argv)
    if args.validation and not args.robustness:
        p.error("--validation goes with --robustness")
    device = select_device(args.device)
    model, ck = load_classifier(args.checkpoint, device)
    if args.image_size:  # the view scored; at the checkpoint's own size, its own mode unless one is named
        own = ck["resize"] if args.image_size == ck["image_size"] else default_resize(args.image_size)
        ck.update(image_size=args.image_size, resize=args.resize or own)
    elif args.resize:
        ck.update(resize=args.resize)
    if args.tta:
        model.tta = args.tta
        said = refit_temperature(model, ck, device)  # the checkpoint's temperature was fitted for its own views
        if said:
            print(said, file=sys.stderr)
    if args.robustness:
        if args.validation:
            where, rows = "validation", validation_robustness((model, ck), args.batch_size, device)
        else:
            where, rows = args.test_path, robustness((model, ck), args.test_path, args.batch_size, device)
        print(json.dumps({"test_path": where, "robustness": rows, "provenance": ck.get("provenance")}) if args.json
              else format_robustness(rows) + "\ncheckpoint: " + describe(ck.get("provenance")))
        return 0
    metrics = evaluate((model, ck), args.test_path, args.batch_size, device, jpeg_quality=args.jpeg_quality)
    metrics["provenance"] = ck.get("provenance")
    print(json.dumps(metrics) if args.json
          else format_metrics(metrics) + "\ncheckpoint: " + describe(metrics["provenance"]))


if __name__ == "__main__":
    cli.run(main)

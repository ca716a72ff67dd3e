#!/usr/bin/env python
"""Classify image files and folders (recursively) with a checkpoint.

One line per file: path, label, probability. For two classes the probability is P(positive class) (FAKE, or
EDITED; REAL is negative) whatever the label; for more classes it is that of the predicted label, followed
by every class's probability (REAL=... EDITED=... FAKE=...). Probabilities are calibrated on the validation
split (temperature scaling); a verdict whose probability is under 0.75 is marked "uncertain".
Any size or mode is accepted and prepared as in training. A file that cannot be read gets an error line and
the run goes on. Exit 0: every file classified; 1: some could not be read; 2: usage error (bad checkpoint...).
"""
import argparse
import json
import sys

from utils import cli
from utils.checkpoint import load_classifier
from utils.inference import predict, select_device


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train.py")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    device = select_device(args.device)
    model, ck = load_classifier(args.checkpoint, device)  # read once, shared with predict()
    classes = ck["classes"]
    if not args.json and len(classes) == 2:
        print(f"# probability = P({classes[1]}); {classes[0]} is the negative class", file=sys.stderr)
    failed = total = 0
    for r in predict((model, ck), args.paths, args.batch_size, device,
                     progress=args.progress and sys.stderr.isatty()):
        total += 1
        if "error" in r:
            failed += 1
        if args.json:
            print(json.dumps(r), flush=True)
        elif "error" in r:
            print(f"{r['path']}\tERROR\t{r['error']}", flush=True)
        elif len(classes) == 2:
            print(f"{r['path']}\t{r['label']}\t{r['probability']:.4f}" + ("\tuncertain" if r["uncertain"] else ""),
                  flush=True)
        else:  # every class's probability
            probs = " ".join(f"{c}={p:.4f}" for c, p in r["probabilities"].items())
            print(f"{r['path']}\t{r['label']}\t{r['probability']:.4f}\t{probs}" + ("\tuncertain" if r["uncertain"] else ""),
                  flush=True)
    print(f"{total} files: {total - failed} classified, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)

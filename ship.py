#!/usr/bin/env python
"""Make a training run one of the shipped detectors in weights/ (the ones predict.py, the demo and the web page
use when no model is named), and measure the figures of its model card.

    python ship.py three_class                 # ship runs/weights-three-class/checkpoint.pt
    python ship.py three_class --run runs/X    # ship another run as three_class
    python ship.py --train                     # retrain every detector with its recorded command, then ship
                                               # (what `make weights` runs: about 2 hours on 2 CPU cores)
    python ship.py --docs                      # only rewrite the tables of README.md and docs/model-card.md
                                               # from the cards (shipping it does this too)

Writes weights/<name>.pt (half precision when measured to give the same verdicts on the whole test split),
weights/<name>.onnx (for predict.py --model without torch) and weights/<name>.json: the training command,
commit, data signatures and the measured metrics (clean test, JPEG 75, the robustness table, bench/bias.py's bias
table, the outside-what-I-know score and its rate on the test split, edit metrics, ECE, the regression slice that
tests/test_shipped_weights.py checks). A run whose checkpoint has no outside score, or one fitted on other features
than the detector's, gets it fitted here, on its own training and validation images.
"""
import argparse
import subprocess
import sys

from utils import cli


def main(argv=None):
    from shipping.detectors import DETECTORS, ship, train_commands
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help=f"detectors to ship: {', '.join(DETECTORS)} "
                                                            "(default: all)")
    p.add_argument("--run", help="the run folder to ship (default runs/weights-<name>; a detector trained as two runs "
                                 "also reads <run>-localiser); one NAME only")
    p.add_argument("--train", action="store_true", help="train each detector first, with its recorded command")
    p.add_argument("--docs", action="store_true", help="only rewrite the docs' tables from the shipped cards")
    args = p.parse_args(argv)
    if args.docs:
        from shipping.cards import write_docs
        print("rewrote " + (", ".join(write_docs()) or "nothing: the docs already say what the cards say"))
        return 0
    names = args.names or list(DETECTORS)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        p.error(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(DETECTORS)}")
    if args.run and (len(names) != 1 or args.train):
        p.error("--run ships one named detector, without --train")
    if args.train:  # a split a later run needs is missing: say so now, not hours into the first runs
        from data.other_photos import resolve_photos
        from utils.training.config import RECIPES
        for name in names:
            for train_args in train_commands(name):
                recipe = train_args[train_args.index("--recipe") + 1] if "--recipe" in train_args else "default"
                for split in filter(None, [RECIPES[recipe].get("other_photos")]):
                    resolve_photos(split)  # a DataError that says how to make it
    for name in names:
        for train_args in train_commands(name) if args.train else []:
            command = [sys.executable, "train.py", *train_args]
            print("$", " ".join(command), file=sys.stderr, flush=True)
            subprocess.run(command, check=True)
        ship(name, args.run, log=lambda line: print(line, file=sys.stderr, flush=True))
    from shipping.cards import write_docs
    print("rewrote the tables of " + (", ".join(write_docs()) or "no doc"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(main)

#!/usr/bin/env python
"""Train a model on a split of images/ (or any <CLASS>/ folder tree) and report it on the paired test split.

Classes are the folder names (case-insensitive). With two classes REAL is the negative class and the model
outputs P(the other class) (FAKE, or EDITED), trained with BCE; with more, softmax cross-entropy.
Runs unchanged under `torchrun --nproc_per_node=N train.py ...` (DistributedDataParallel: gloo on the CPU,
NCCL on CUDA; --batch-size is per process; only rank 0 prints and writes the run folder).
"""
import argparse

from utils import cli, distributed
from utils.training.config import add_flags, make_config
from utils.training.run import train


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p)  # one flag per TrainConfig field, with the field's help text
    args = p.parse_args(argv)
    if args.resume and not args.out:
        p.error("--resume needs --out RUN_FOLDER")
    return args


def main(argv=None):
    args = vars(parse_args(argv))
    recipe = args.pop("recipe") or "default"
    try:
        config = make_config(recipe, **args)
    except ValueError as e:  # a setting the flags cannot check alone (an unknown --edit-kinds name)
        raise cli.UserError(e) from None
    try:
        train(config)
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    cli.run(main)

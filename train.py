#!/usr/bin/env python
"""Train a model on a split of images/ (or any <CLASS>/ folder tree) and report it on the paired test split.

Classes are the folder names (case-insensitive). With two classes REAL is the negative class and the model
outputs P(the other class) (FAKE, or EDITED), trained with BCE; with more, softmax cross-entropy.
Runs unchanged under `torchrun --nproc_per_node=N train.py ...` (DistributedDataParallel: gloo on the CPU,
NCCL on CUDA; --batch-size is per process; only rank 0 prints and writes the run folder).
"""
import argparse

from data.images import RESIZE_MODES
from models import MODELS, TTA_MODES
from utils import cli, distributed
from utils.config import RECIPES, TrainConfig, make_config
from utils.training import train


def parse_args(argv=None):
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=list(RECIPES), default="default",
                   help="named defaults from utils/config.py (RECIPES): default; seed (the seed notebook's settings); "
                        "one-pass (model_2, one pass over 8.5k train images); fast (fullres_cnn, 2 epochs: the "
                        "time-to-93%% run); best (the pool-first x2, 18 minutes); robust (best + robust training); "
                        "gpu (fullres_cnn_x8_pool_first, 30 epochs, for a GPU). Every flag below overrides it")
    p.add_argument("--model", choices=sorted(MODELS), help=f"registered model (default {d.model})")
    p.add_argument("--train-path",
                   help="split name under images/ (train, train-medium, train-small, train-real-edited, ...) "
                        f"or a folder of <CLASS>/<images> (default {d.train_path})")
    p.add_argument("--test-path", default=None,
                   help="split or folder reported after training; default: the split paired with a shipped "
                        "training split (train* -> test, train-real-edited -> test-real-edited, ...), none for "
                        "other folders; 'none' to skip")
    p.add_argument("--image-size", type=int, metavar="N",
                   help=f"the side of the model's square view of an image (default {d.image_size}, CIFAKE's size)")
    p.add_argument("--resize", choices=RESIZE_MODES,
                   help="how an image of another size is brought to N: crop (the centred N x N of its own pixels, "
                        "never resampled; an image smaller than N is skipped with the reason) or shrink (the centred "
                        f"square resized, as CIFAKE's detectors do; default {d.resize})")
    p.add_argument("--train-crop", type=int, metavar="M",
                   help="train on a random M x M window of each N x N view, at its own pixels (edits drawn on the "
                        "window); validation, evaluation and prediction see the whole view (0: off, the default)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--budget-minutes", type=float, metavar="M",
                   help="train for as many epochs as fit M minutes of wall time on this machine (measured from a "
                        "few steps and a timed validation slice before training; replaces --epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["adamw", "adam"], help="adamw (default) or adam (the seed's)")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "none"])
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None, help="random horizontal flips")
    p.add_argument("--vflip", action=argparse.BooleanOptionalAction, default=None, help="random vertical flips")
    p.add_argument("--crop-padding", type=int, help="pad-and-random-crop by this many pixels (0: off)")
    p.add_argument("--robust", type=float, metavar="P",
                   help="robust training: each label-neutral change with a training range in "
                        "data/degradations.py (JPEG q 50-95, down/up resizing, blur, Gaussian noise, a gamma curve) "
                        "hits a share P of every batch, every class alike (0: off; e.g. 0.3)")
    p.add_argument("--robust-extra", metavar="K1,K2",
                   help="with --robust, also draw these kept-aside changes (sharpen, webp, palette); the bias "
                        "table then marks them trained for this run")
    p.add_argument("--synthetic-edits", type=float, metavar="P",
                   help="edit a share P of the REAL images of every batch on the fly (data/synthetic_edits.py: "
                        "salt-and-pepper, blurred, smoothed, cloned or brightened patches) and label them EDITED; "
                        "EDITED joins the classes if the folder has none, and the validation part gets the same "
                        "share edited once, with a fixed seed (0: off)")
    p.add_argument("--edit-kinds", metavar="K1,K2",
                   help="comma-separated kinds for --synthetic-edits, or all (the 17 families; default: the "
                        "shipped five)")
    p.add_argument("--edit-classes", metavar="C1,C2",
                   help="the classes --synthetic-edits hits: REAL (default), or REAL,FAKE for an edit localiser "
                        "whose map must not tell real from generated")
    p.add_argument("--label-smoothing", type=float, help="move targets this far towards uniform (0: off)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="validate and save an exponential moving average of the weights (e.g. 0.999; 0: off)")
    p.add_argument("--whiten", action=argparse.BooleanOptionalAction, default=None,
                   help="start the first convolution as +- the whitening filters of the training images' patches "
                        "(airbench's whitening layer, kept trainable; see README)")
    p.add_argument("--tta", choices=TTA_MODES,
                   help="test-time augmentation, stored in the checkpoint so evaluate/predict/export use it: "
                        "none (default); flip: average the logits of each image and its mirror image; "
                        "flip-shift: also one-pixel shifts and their mirrors (6 passes; +0.2 pt on validation)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the training step (pays off on long GPU runs; compile time reported apart)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="auto (default): AMP on CUDA; on a CPU bf16 only with native support and a measured speed-up")
    p.add_argument("--val-fraction", type=float, help="seeded validation part of the training folder (default 0.1)")
    p.add_argument("--max-train-images", type=int, help="train on a seeded subset of this many images")
    p.add_argument("--max-val-images", type=int, help="validate on a seeded subset of this many of the validation part")
    p.add_argument("--outside-fit-images", type=int,
                   help="fit the outside-what-I-know score on this many training images (default 20000)")
    p.add_argument("--balance", action="store_true", default=None,
                   help="weight the loss inversely to class frequency (for the 1.5k-vs-5k EDITED splits)")
    p.add_argument("--tune-threshold", action="store_true", default=None,
                   help="two classes: choose the decision threshold on the validation split (stored in the checkpoint)")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false", default=None,
                   help="skip fitting the temperature that calibrates the probabilities on the validation split")
    p.add_argument("--sync-bn", action="store_true", default=None,
                   help="under torchrun on CUDA: BatchNorm statistics over every rank's batch (SyncBatchNorm)")
    p.add_argument("--seed", type=int, help="seed for the split, initialisation and batch order (default 0)")
    p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", help="run folder (default runs/<model>-<train split>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")
    args = p.parse_args(argv)
    if args.resume and not args.out:
        p.error("--resume needs --out RUN_FOLDER")
    return args


def main(argv=None):
    args = vars(parse_args(argv))
    recipe = args.pop("recipe")
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

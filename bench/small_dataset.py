#!/usr/bin/env python
"""A user's small dataset at its own size: does a run that learns give a model that answers?

The dataset (made once under runs/bench/small-dataset/, seeded), from photographs that install with the
requirements: REAL, random 256 px crops of two photographs (scikit-learn's china.jpg and flower.jpg); FAKE, other
crops of the same photographs after a 2x bicubic down-and-up, a resampling trace that only full-resolution pixels
hold. Both saved as PNG, so that every class has the same file history. The test split: crops of a photograph
from another source (matplotlib's grace_hopper.jpg), REAL and down-and-up alike.

Each run is `train.py --train-path DIR/train --test-path DIR/test --image-size 128 --epochs 6 --seed S` plus the
flags given (`--variant NAME=FLAGS`, repeatable; default: the plain run and `--resize shrink`). Printed per run:
test accuracy, ROC-AUC, the best accuracy any single cut on the same test scores gives, the share called FAKE,
and the run's own warnings, if any; the last line is one JSON object.

`--diagnose CHECKPOINT` scores a finished run's validation and test images three ways: as saved (evaluation-mode
BatchNorm, its running statistics), with those statistics measured again on its training images
(utils.training.batchnorm), and with each set's own batch statistics.
"""
import argparse
import json
import shlex

import numpy as np
from PIL import Image

from data.real_photos import real_photo_files
from data.sources import REPO_ROOT
from utils.inference.evaluation import predict_folder
from utils.inference.metrics import classification_metrics
from utils.training.config import make_config
from utils.training.diagnosis import best_cut_accuracy
from utils.training.run import train

WORK = REPO_ROOT / "runs" / "bench" / "small-dataset"
TRAIN_PHOTOS = ("china.jpg", "flower.jpg")  # scikit-learn's
TEST_PHOTO = "grace_hopper.jpg"             # matplotlib's


def photo(name) -> Image.Image:
    """One of data.real_photos' photographs by file name (these three install with the requirements)."""
    return Image.open(next(path for _, path in real_photo_files()[0] if path.name == name)).convert("RGB")


def down_up(crop: Image.Image) -> Image.Image:
    """Half the size and back, bicubic: the trace of a resampling that only full-resolution pixels hold."""
    w, h = crop.size
    return crop.resize((w // 2, h // 2), Image.Resampling.BICUBIC).resize((w, h), Image.Resampling.BICUBIC)


def random_crops(im, n, size, rng):
    w, h = im.size
    for _ in range(n):
        x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
        yield im.crop((x, y, x + size, y + size))


def make_dataset(root, per_photo=150, test_per_class=100, size=256, seed=0):
    """Write root/train/{REAL,FAKE} and root/test/{REAL,FAKE} once (PNG); -> root."""
    if (root / "done").is_file():
        return root
    rng = np.random.default_rng(seed)
    splits = {"train": [photo(name) for name in TRAIN_PHOTOS], "test": [photo(TEST_PHOTO)]}
    for split, photos in splits.items():
        per = per_photo if split == "train" else test_per_class
        for cls in ("REAL", "FAKE"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            k = 0
            for im in photos:
                for crop in random_crops(im, per, size, rng):
                    (down_up(crop) if cls == "FAKE" else crop).save(root / split / cls / f"{k:04d}.png")
                    k += 1
    (root / "done").write_text("")
    return root


def run(root, name, flags, seed):
    overrides = vars(_flag_parser().parse_args(shlex.split(flags)))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = make_config(**{"train_path": str(root / "train"), "test_path": "none", "image_size": 128, "epochs": 6,
                            "seed": seed, "progress": False, "out": str(WORK / "runs" / f"{name}-{seed}"),
                            **overrides})
    result = train(config)
    scored = predict_folder(result["checkpoint"], str(root / "test"), device="cpu", verbose=False)
    labels, probs = scored["labels"], scored["probs"]
    fake = scored["classes"].index("FAKE")
    p_fake = probs[:, fake]
    m = classification_metrics(labels, probs, scored["classes"], scored["threshold"], scored["predictions"])
    last = result["history"][-1]
    return {"variant": name, "flags": flags, "seed": seed, "resize": config.resize,
            "test_accuracy": m["accuracy"], "roc_auc": m["roc_auc"],
            "best_cut_accuracy": best_cut_accuracy(labels == fake, p_fake),
            "called_fake": float(np.mean(scored["predictions"] == fake)),
            "train_accuracy": last["train_accuracy"], "val_accuracy": last["val_accuracy"],
            "val_roc_auc": last["val_roc_auc"], "warnings": result["warnings"]}


def diagnose_batchnorm(checkpoint, test_dir):
    """Accuracy, best single cut and share called FAKE of one checkpoint's validation and test images, scored as
    saved, with BatchNorm's statistics measured again on its training images, and with batch statistics."""
    import copy

    import torch

    from data import load_folder
    from models import probabilities
    from utils.inference.checkpoint import load_classifier
    from utils.inference.evaluation import checkpoint_split
    from utils.training.batchnorm import batchnorm_layers, remeasure_batchnorm, statistics_images
    model, ck = load_classifier(checkpoint)
    folder, split = checkpoint_split(ck)
    test = load_folder(test_dir, verbose=False, image_size=ck["image_size"], resize=ck["resize"])
    fake = ck["classes"].index("FAKE")
    remeasured = copy.deepcopy(model)
    remeasure_batchnorm(remeasured, statistics_images(folder.images[split.train_idx], split.train_labels,
                                                      ck["config"], split.classes), "cpu")
    batch_stats = copy.deepcopy(model)
    for m in batchnorm_layers(batch_stats):
        m.train()
    for name, m in (("as saved", model), ("statistics measured again", remeasured), ("batch statistics", batch_stats)):
        for part, x, y in (("validation", split.val_images, split.val_labels), ("test", test.images[:], test.labels)):
            with torch.no_grad():
                p = probabilities(m(torch.as_tensor(np.asarray(x)))).numpy()[:, 1]
            truth = np.asarray(y) == fake
            print(f"{name:>26} {part:>10}: accuracy {np.mean((p >= 0.5) == truth):.3f}, best single cut "
                  f"{best_cut_accuracy(truth, p):.3f}, called FAKE {np.mean(p >= 0.5):.2f}")


def _flag_parser():
    from utils.training.config import add_flags
    p = argparse.ArgumentParser(add_help=False)
    add_flags(p)
    return p


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", metavar="NAME=FLAGS",
                   help="a run: its name and train.py flags (default: plain= and shrink=--resize shrink)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--diagnose", metavar="CHECKPOINT", help="only score this run's checkpoint three ways (above)")
    args = p.parse_args()
    if args.diagnose:
        return diagnose_batchnorm(args.diagnose, make_dataset(WORK / "data") / "test")
    variants = [v.split("=", 1) for v in (args.variant or ["plain=", "shrink=--resize shrink"])]
    root = make_dataset(WORK / "data")
    rows = []
    for name, flags in variants:
        for seed in args.seeds:
            row = run(root, name, flags, seed)
            rows.append(row)
            print(f"{name:>12} seed {seed}: resize {row['resize']}, test accuracy {row['test_accuracy']:.3f}, "
                  f"ROC-AUC {row['roc_auc']:.3f}, best single cut {row['best_cut_accuracy']:.3f}, called FAKE "
                  f"{row['called_fake']:.2f}; last epoch train {row['train_accuracy']:.2f}, validation "
                  f"{row['val_accuracy']:.2f} (ROC-AUC {row['val_roc_auc']:.2f})"
                  + (f"; warned: {len(row['warnings'])}" if row["warnings"] else ""), flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

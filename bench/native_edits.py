#!/usr/bin/env python
"""Edits found at the photographs' own resolution against 32 px: the family table (bench/edits.py) on 256 px
crops.

Data (made once under runs/bench/native-edits/, seeded), from the photographs data/real_photos.py lists (the
bench says which it could not find; `make bench-deps` installs them):
- split by source: the test photographs come from TEST_SOURCES, never trained on; the other sources' photos
  are split by photograph into training and validation (VAL_PHOTOS of them);
- crops of 256 px at the photographs' own resolution (seeded positions, half of them mirrored), each saved as
  a user's copy would be (`users_copy`: JPEG 75-95, one in five PNG), REAL and EDITED alike;
- test: --test-crops unedited crops, and for each of the 17 families (data.synthetic_edits.EDITS) --per-family
  crops edited by it at 256 px before the save; the true mask is what the edit changed before the save;
- the 32 px twin: the same crops shrunk to 32 px (data.images' shrink) before any edit or save, then edited at
  32 px and saved the same way: the same photographs, edits and history, at CIFAKE's size.
Runs: at each size, two localisers (--model, edit_map_lite) trained on the training crops with synthetic edits of
one half of the families (GROUPS) on half of each batch and the label-neutral changes of robust training for
every image (`localiser`'s settings but a weight average of 0.99 and no mirror TTA, --minutes of training each;
at 256 px on random --train-crop windows of each crop, 64 px by default, scored on whole crops): a family's
"trained" recall comes from the run that drew it, its "left out" recall from the other. These runs are bench
models, never shipped: no shipped 32 px detector trains on the real-photo bench's photographs.
Scores: the edit score of utils.inference.verdict.edit_scores (the top 9 of every 1,024 map pixels against the map's
median); the cut calls 5% of the validation photos' REAL crops EDITED (chosen there, never on the test); per
family the share of its test crops at or over the cut, the test REAL crops' false-alarm rate at it, and the
pixel F1 of the maps (at 0.5) on the edited test crops.

    python bench/native_edits.py [--minutes 20] [--sizes 256,32] [--train-crops 4000]

The last line is one JSON object.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data.degradations import jpeg
from data.images import open_rgb
from data.real_photos import found_photos
from data.synthetic_edits import ALL_KINDS, EDITS
from utils.inference.checkpoint import load_classifier
from utils.inference.metrics import edit_map_metrics
from utils.inference.scoring import run_model
from utils.inference.verdict import edit_scores
from utils.training.run import train

WORK = Path(__file__).resolve().parent.parent / "runs" / "bench" / "native-edits"
TEST_SOURCES = ("mate-backgrounds", "scikit-learn", "matplotlib")
VAL_PHOTOS = 6
CROP = 256
GROUPS = (ALL_KINDS[0::2], ALL_KINDS[1::2])  # each run trains on one, the other is left out


def photo_split(seed=0):
    found = found_photos(lambda line: print(line, file=sys.stderr))
    pictures = [(s, np.asarray(open_rgb(p))) for s, p in found]
    pictures = [(s, a) for s, a in pictures if min(a.shape[:2]) >= CROP]
    test = [a for s, a in pictures if s in TEST_SOURCES]
    rest = [a for s, a in pictures if s not in TEST_SOURCES]
    order = np.random.default_rng(seed).permutation(len(rest))
    return {"train": [rest[i] for i in order[VAL_PHOTOS:]], "val": [rest[i] for i in order[:VAL_PHOTOS]],
            "test": test}


def crops(pictures, n, rng) -> torch.Tensor:
    """n seeded CROP x CROP crops, at their photographs' own resolution, spread over the photographs."""
    out = np.empty((n, CROP, CROP, 3), np.uint8)
    for i in range(n):
        p = pictures[i % len(pictures)]
        y, x = rng.integers(0, p.shape[0] - CROP + 1), rng.integers(0, p.shape[1] - CROP + 1)
        c = p[y:y + CROP, x:x + CROP]
        out[i] = c[:, ::-1] if rng.random() < 0.5 else c
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def shrink(images, size) -> torch.Tensor:
    """The 32 px twin: each crop as data.images' shrink makes it (antialiased bicubic)."""
    if size == CROP:
        return images
    return torch.from_numpy(np.stack([np.asarray(Image.fromarray(x.permute(1, 2, 0).numpy()).resize(
        (size, size), Image.Resampling.BICUBIC)) for x in images])).permute(0, 3, 1, 2).contiguous()


def users_copy(images, gen) -> torch.Tensor:
    """Each image saved as a user's copy: JPEG at a quality of 75-95, or (one in five) PNG, i.e. unchanged."""
    out = images.clone()
    quality = torch.randint(75, 96, (len(images),), generator=gen)
    png = torch.rand(len(images), generator=gen) < 0.2
    for q in quality[~png].unique().tolist():
        idx = ((quality == q) & ~png).nonzero().squeeze(1)
        out[idx] = jpeg(images[idx], q)
    return out


def edited_by(kind, images, gen):
    """-> (edited images, masks of what the edit changed), before any save."""
    changed = EDITS[kind](images, gen)
    return changed, (changed != images).any(1)


def make_sets(args) -> dict:
    """The crops at every size (made once, then read back): training crops as files, validation and test
    crops as tensors with their families and masks."""
    sets = {}
    pictures = photo_split(args.seed)
    rng = np.random.default_rng(args.seed)
    base = {"train": crops(pictures["train"], args.train_crops, rng),
            "val": crops(pictures["val"], args.val_crops, rng),
            "test": crops(pictures["test"], args.test_crops, rng)}
    for size in args.sizes:
        cache = WORK / f"sets-{size}.pt"
        if cache.exists():
            sets[size] = torch.load(cache)
            continue
        gen = torch.Generator().manual_seed(args.seed)
        folder = WORK / f"train-{size}" / "REAL"
        folder.mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(users_copy(shrink(base["train"], size), gen)):
            Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")  # the saved copy, as is
        test = shrink(base["test"], size)
        images, masks, family = [test], [torch.zeros(len(test), size, size, dtype=torch.bool)], [-1] * len(test)
        for k, kind in enumerate(ALL_KINDS):
            pick = torch.randperm(len(test), generator=gen)[:args.per_family]
            changed, changed_masks = edited_by(kind, test[pick], gen)
            images.append(changed)
            masks.append(changed_masks)
            family += [k] * len(pick)
        sets[size] = {"train": str(folder.parent), "val": users_copy(shrink(base["val"], size), gen),
                      "test": users_copy(torch.cat(images), gen), "masks": torch.cat(masks),
                      "family": torch.tensor(family)}
        torch.save(sets[size], cache)
    return sets


def localiser(size, group, train_path, args) -> str:
    window = args.train_crop if size == CROP else 0
    out = WORK / (f"run-{size}-window{window}-group{group}" if window else f"run-{size}-group{group}")
    if args.reuse and (out / "checkpoint.pt").exists():
        return str(out / "checkpoint.pt")
    train(recipe="localiser", model=args.model, train_path=train_path, test_path="none", image_size=size,
          resize="crop", edit_kinds=",".join(GROUPS[group]), edit_classes="REAL", budget_minutes=args.minutes,
          train_crop=window, batch_size=args.batch_size * (CROP // (window or CROP)) ** 2 if size == CROP else 128,
          out=str(out), progress=False, seed=args.seed,
          max_val_images=args.val_crops, ema=args.ema,
          # a bench localiser is scored by its map alone: no mirror TTA (it doubles each epoch's validation), and
          # the outside score (never read here) fitted on a few hundred images, not 1,365 crops (95 s of a run)
          tta="none", outside_fit_images=500)
    return str(out / "checkpoint.pt")


def scores_and_maps(checkpoint, images, size):
    model, _ = load_classifier(checkpoint)
    _, maps = run_model(model, images, with_map=True)
    maps = maps.numpy()
    return edit_scores(maps, max(1, 9 * size * size // 1024)), maps


def table(size, sets, checkpoints) -> dict:
    """Recall per family at the cut that calls 5% of validation REAL crops EDITED, trained and left out."""
    s = sets[size]
    family = s["family"].numpy()
    out = {"trained": {}, "left_out": {}, "real_called_edited": [], "pixel_f1_trained": [], "cut": []}
    for group, ck in enumerate(checkpoints):
        val_scores, _ = scores_and_maps(ck, s["val"], size)
        cut = float(np.quantile(val_scores, 0.95))
        test_scores, maps = scores_and_maps(ck, s["test"], size)
        out["cut"].append(round(cut, 4))
        out["real_called_edited"].append(round(float((test_scores[family < 0] >= cut).mean()), 4))
        trained = np.isin(family, [ALL_KINDS.index(k) for k in GROUPS[group]])
        out["pixel_f1_trained"].append(edit_map_metrics(maps[trained], s["masks"].numpy()[trained])["pixel_f1"])
        for k, kind in enumerate(ALL_KINDS):
            recall = round(float((test_scores[family == k] >= cut).mean()), 3)
            out["trained" if kind in GROUPS[group] else "left_out"][kind] = recall
    for column in ("trained", "left_out"):
        out[column] = {k: out[column][k] for k in ALL_KINDS}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=f"{CROP},32", type=lambda t: [int(v) for v in t.split(",")])
    p.add_argument("--minutes", type=float, default=20, help="training budget of each 256 px run (32 px: a quarter)")
    p.add_argument("--train-crops", type=int, default=4000)
    p.add_argument("--val-crops", type=int, default=300)
    p.add_argument("--test-crops", type=int, default=300)
    p.add_argument("--per-family", type=int, default=100)
    p.add_argument("--model", default="edit_map_lite")
    p.add_argument("--ema", type=float, default=0.99,
                   help="weight average (the recipe's 0.999 spans about as many steps as a short run has)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="at 256 px (32 px: 128): 8 crops hold the caches; with --train-crop as many pixels a step")
    p.add_argument("--train-crop", type=int, default=64,
                   help="the 256 px runs train on random windows of this side of each crop (0: the whole crop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true", help="reuse finished runs")
    args = p.parse_args()
    started = time.perf_counter()
    sets = make_sets(args)
    out = {"test_sources": TEST_SOURCES, "groups": GROUPS, "model": args.model}
    for size in args.sizes:
        minutes = args.minutes if size == CROP else args.minutes / 4
        checkpoints = [localiser(size, g, sets[size]["train"], argparse.Namespace(**{**vars(args), "minutes": minutes}))
                       for g in range(len(GROUPS))]
        out[str(size)] = table(size, sets, checkpoints)
        print(f"# {size} px: {json.dumps(out[str(size)])}", file=sys.stderr)
    print(f"\n{'family':>22}" + "".join(f"  {s} px trained / left out" for s in args.sizes))
    for kind in ALL_KINDS:
        print(f"{kind:>22}" + "".join(f"  {out[str(s)]['trained'][kind]:>10.3f} / "
                                      f"{out[str(s)]['left_out'][kind]:<10.3f}" for s in args.sizes))
    out["minutes"] = round((time.perf_counter() - started) / 60, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Runs at the images' own size, measured: memory and speed of training from a split larger than memory, and
the time to a verdict and a stitched edit map on a 12 MP photo.

1. `memory`: a split of `--images` (50,000) crops of 256 px, cut at random (seeded) from the photographs that
   install with registry packages (data/real_photos.py; the bench says which it could not find) and saved as
   JPEG 90, is decoded once into the cache at 256 px (`crop`: the crops' own pixels) and trained on for
   `--steps` steps of fullres_cnn (fp32, batches of 8 crops) by the training code's own data path
   (utils.training.training_data: a training part of 8.9 GB stays on disk, data.rows.DiskRows reads each batch), in a
   fresh process whose peak resident memory (ru_maxrss) is reported. Baselines, each in its own process: the
   same on 8,000 of the crops (1.6 GB, gathered into RAM: the data path alone), and CIFAKE's `train` at 32 px
   in batches of 512 (the same pixels a batch), compared per pixel. It also times the other way to feed a
   model, decoding the files in workers, as images a second a core.
2. `predict`: a 4000 x 3000 photograph (a registry photo enlarged, then saved as JPEG 90) through predict()
   with a model at 256 px (`--model`, weights untrained: the time does not depend on them), tiled and
   stitched, on this machine's cores: seconds to the verdict and the map.

    python bench/native_size.py [--parts memory,predict] [--images 50000] [--steps 40] [--model edit_map_lite]

The first line says which CPU; the last is one JSON object.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from data.images import open_rgb
from data.real_photos import found_photos

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "runs" / "bench" / "native-size"


def photos():
    return [path for _, path in found_photos(lambda line: print(line, file=sys.stderr))]


def _write_crops(args):
    paths, out, start, n, size, seed = args
    rng = np.random.default_rng(seed + start)
    pictures = [np.asarray(open_rgb(p)) for p in paths]
    pictures = [p for p in pictures if min(p.shape[:2]) >= size]
    for i in range(start, start + n):
        p = pictures[rng.integers(len(pictures))]
        y, x = rng.integers(0, p.shape[0] - size + 1), rng.integers(0, p.shape[1] - size + 1)
        crop = p[y:y + size, x:x + size]
        cls = "FAKE" if i % 2 else "REAL"  # any label: this split measures memory and speed, not accuracy
        Image.fromarray(crop[:, ::-1] if rng.random() < 0.5 else crop).save(out / cls / f"{i:06d}.jpg", quality=90)


def crop_split(n, size=256, seed=0) -> Path:
    """`n` seeded random crops of the registry photos, REAL and FAKE alike, as JPEG 90 (made once)."""
    out = WORK / f"crops-{size}-{n}"
    if (out / "done").exists():
        return out
    for cls in ("REAL", "FAKE"):
        (out / cls).mkdir(parents=True, exist_ok=True)
    paths = photos()
    from multiprocessing import get_context
    chunks = [(paths, out, s, min(2000, n - s), size, seed) for s in range(0, n, 2000)]
    with get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_write_crops, chunks)
    (out / "done").write_text(str(n))
    return out


def child_train(train_path, image_size, resize, steps, max_val, batch_size, max_train=0) -> dict:
    """In this (fresh) process: the training code's data for `train_path`, then `steps` training steps of
    fullres_cnn in fp32 -> images/s, pixels/s, where the training part lives, peak resident memory."""
    import torch

    from data import Batches
    from models import ImageClassifier, build_model, loss_function
    from utils.training.config import make_config
    from utils.training.optimization import make_optimizer
    from utils.training.training_data import load_training_data
    config = make_config(model="fullres_cnn", train_path=str(train_path), image_size=image_size, resize=resize,
                         max_val_images=max_val, max_train_images=max_train)
    data = load_training_data(config, torch.device("cpu"), verbose=False)
    model = ImageClassifier(build_model("fullres_cnn"), data.mean, data.std).train()
    optimizer = make_optimizer(model, config, "cpu")
    loss_fn = loss_function(2)
    batches = iter(Batches(data.train_images, data.train_labels, batch_size, shuffle=True, hflip=True))
    seen, read_s, started = 0, 0.0, None
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps
            seen, read_s, started = 0, 0.0, time.perf_counter()
        t = time.perf_counter()
        x, y = next(batches)
        read_s += time.perf_counter() - t
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    seconds = time.perf_counter() - started
    return {"train_images": len(data.train_labels), "image_size": image_size, "batch_size": batch_size,
            "train_part_on_disk": not isinstance(data.train_images, torch.Tensor),
            "train_part_gb": round(len(data.train_labels) * 3 * image_size ** 2 / 1e9, 2),
            "images_per_s": round(seen / seconds, 1),
            "megapixels_per_s": round(seen * image_size ** 2 / seconds / 1e6, 3),
            "batch_read_share": round(read_s / seconds, 3),
            "peak_resident_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}


def in_child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def decode_rate(split: Path, n=300) -> float:
    """Images a second one core decodes from the split's files (the encoded-bytes-in-workers way)."""
    files = sorted((split / "REAL").iterdir())[:n]
    t = time.perf_counter()
    for f in files:
        np.asarray(open_rgb(f))
    return len(files) / (time.perf_counter() - t)


def memory_part(args) -> dict:
    from data import load_folder
    split = crop_split(args.images)
    t = time.perf_counter()
    folder = load_folder(split, image_size=256, resize="crop")
    cache_s = time.perf_counter() - t
    rows = folder.images
    idx = np.sort(np.random.default_rng(0).permutation(len(rows))[:64])
    t = time.perf_counter()
    for _ in range(20):
        rows[idx]
    read_rate = 20 * 64 / (time.perf_counter() - t)
    # the same pixels a batch at both sizes: 8 crops of 256 px (64 spill the CPU's caches: a third slower a pixel)
    batch = args.batch_256
    native = in_child(str(split), 256, "crop", args.steps, 500, batch)
    native_in_memory = in_child(str(split), 256, "crop", args.steps, 500, batch, 8000)  # 1.6 GB: gathered into RAM
    baseline = in_child("train", 32, "shrink", args.steps, 2000, batch * 64)
    return {"split": str(split), "cache_seconds": round(cache_s, 1), "cache_built_now": folder.built,
            "cache_read_images_per_s": round(read_rate), "decode_images_per_s_per_core": round(decode_rate(split)),
            "native": native, "native_in_memory": native_in_memory, "baseline_32px_in_memory": baseline,
            "pixel_throughput_ratio": round(native["megapixels_per_s"] / baseline["megapixels_per_s"], 3),
            "disk_against_memory_256px": round(native["megapixels_per_s"] / native_in_memory["megapixels_per_s"], 3)}


def predict_part(args) -> dict:
    import torch

    import utils.inference.files
    from models import ImageClassifier, build_model
    from utils.inference.checkpoint import make_checkpoint, save_checkpoint
    if args.overlap is not None:
        utils.inference.files.TILE_OVERLAP = args.overlap
    from utils.inference.predict import predict
    source = max(photos(), key=lambda p: Image.open(p).size[0] * Image.open(p).size[1])
    photo = WORK / "photo-12mp.jpg"
    WORK.mkdir(parents=True, exist_ok=True)
    open_rgb(source).resize((4000, 3000), Image.Resampling.LANCZOS).save(photo, quality=90)
    torch.manual_seed(0)
    model = ImageClassifier(build_model(args.model, 2), [0.5] * 3, [0.25] * 3).eval()
    ck = make_checkpoint(model, args.model, ["REAL", "FAKE"], 256, {}, {}, 0, resize="crop")
    save_checkpoint(ck, WORK / "untrained-256.pt")
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        [verdict] = predict(WORK / "untrained-256.pt", [photo], device="cpu", masks_dir=WORK / "masks")
        times.append(time.perf_counter() - t)
    return {"photo": f"{source.name} enlarged to 4000x3000", "model": args.model, "tiles": verdict["tiles"],
            "overlap": utils.inference.files.TILE_OVERLAP,
            "seconds": [round(t, 2) for t in times], "best_seconds": round(min(times), 2),
            "mask_size": list(Image.open(verdict["mask"]).size), "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="memory,predict")
    p.add_argument("--images", type=int, default=50000)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--model", default="edit_map_lite")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--overlap", type=float, help="tiles' overlap instead of utils.inference.files.TILE_OVERLAP")
    p.add_argument("--batch-256", type=int, default=8,
                   help="crops of 256 px a training batch (32 px: 64 times as many)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child_train(*json.loads(args.child))))
        return
    from utils.training.precision import cpu_line, describe_cpu
    print(f"# {cpu_line(describe_cpu())}", file=sys.stderr)
    out = {"cpu": describe_cpu()}
    for part in args.parts.split(","):
        out[part] = {"memory": memory_part, "predict": predict_part}[part](args)
        print(f"# {part}: {json.dumps(out[part])}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""The seed's data pipeline against ours, side by side in one run, same threads, model_2.

1. training and evaluation images/s: seed-style ImageFolder + DataLoader (its transforms, batch 64) vs the
   uint8 cache + batch augmentation;
2. our training images/s as a fraction of model_2's compute ceiling (one batch already in memory);
3. the whole job, wall clock, each in its own process (start-up included): the seed notebook's (model_2, 20
   epochs of train-small with its loader and settings, then its test report on the 20,000 test images) vs
   `train.py --recipe one-pass --test-path test` (fixed in advance, chosen on validation; its validation,
   calibration, outside score and test report included), with where our run's time went.
The first line names the CPU (`ONEDNN_MAX_CPU_ISA=AVX2` runs a newer CPU as an AVX2-only, fp32-only one); the
last line is one JSON object. Figures, not assertions: compare ratios, since CPUs differ.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision import datasets, transforms

from data import Batches, load_folder, resolve_split
from models import ImageClassifier, build_model
from utils.inference.scoring import run_model
from utils.training.config import make_config
from utils.training.optimization import make_optimizer
from utils.training.precision import cpu_line, describe_cpu


def seed_loader(split_dir, train, subset=None, batch_size=64):
    tf = [transforms.ToTensor()]
    if train:
        tf += [transforms.RandomHorizontalFlip(0.5), transforms.RandomVerticalFlip(0.5),
               transforms.RandomAdjustSharpness(1.2, p=0.3)]
    ds = datasets.ImageFolder(str(split_dir), transform=transforms.Compose(tf))
    if subset:
        ds = torch.utils.data.Subset(ds, np.random.default_rng(0).permutation(len(ds))[:subset].tolist())
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train)


def seed_train_epoch(net, loader, optimizer):
    """The seed's loop; BCE-with-logits equals its Sigmoid + BCELoss. Labels are ImageFolder's (FAKE=0, REAL=1)."""
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    n, t0 = 0, time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(net(x).squeeze(1), y.float()).backward()
        optimizer.step()
        n += len(y)
    return n, time.perf_counter() - t0


@torch.no_grad()
def seed_eval(net, loader):
    net.eval()
    n = correct = 0
    t0 = time.perf_counter()
    for x, y in loader:
        correct += int(((net(x).squeeze(1) > 0).long() == y).sum())
        n += len(y)
    return correct / n, n / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval-images", type=int, default=4000, help="test images for the eval-speed comparison")
    p.add_argument("--quick", action="store_true", help="speeds only, no time-to-accuracy (seconds, not minutes)")
    p.add_argument("--seed-pipeline", action="store_true", help=argparse.SUPPRESS)  # part 3's seed process
    args = p.parse_args()
    if args.seed_pipeline:
        return seed_pipeline()
    torch.manual_seed(0)
    out = {"cpu": describe_cpu()}
    print(f"# {cpu_line(out['cpu'])}; torch {torch.__version__}", file=sys.stderr)
    small_dir, test_dir = resolve_split("train-small"), resolve_split("test")
    small = load_folder(small_dir)
    test = load_folder(test_dir)

    # 1. training speed, one epoch of train-small each
    net = build_model("model_2")
    n, s = seed_train_epoch(net, seed_loader(small_dir, True), torch.optim.Adam(net.parameters(), 1e-3))
    out["seed_train_img_s"] = n / s
    model = ImageClassifier(build_model("model_2"), [0.5] * 3, [0.25] * 3)
    opt = make_optimizer(model, make_config(lr=2e-3), "cpu")
    loss_fn = nn.BCEWithLogitsLoss()
    batches = Batches(small.images[:], small.labels, 128, shuffle=True, hflip=True)  # in memory, as training holds it
    model.train()
    t0, n = time.perf_counter(), 0
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x).squeeze(1), y.float()).backward()
        opt.step()
        n += len(y)
    out["train_img_s"] = n / (time.perf_counter() - t0)

    # 2. the ceiling: the same steps on one batch already in memory (no data path at all)
    x, y = next(iter(batches))
    for _ in range(2):  # warm-up
        opt.zero_grad(); loss_fn(model(x).squeeze(1), y.float()).backward(); opt.step()  # noqa: E702
    t0 = time.perf_counter()
    steps = max(1, n // len(y))
    for _ in range(steps):
        opt.zero_grad(); loss_fn(model(x).squeeze(1), y.float()).backward(); opt.step()  # noqa: E702
    out["ceiling_train_img_s"] = steps * len(y) / (time.perf_counter() - t0)
    out["pipeline_efficiency"] = out["train_img_s"] / out["ceiling_train_img_s"]

    # evaluation speed on the same test images
    _, out["seed_eval_img_s"] = seed_eval(net, seed_loader(test_dir, False, args.eval_images))
    idx = np.sort(np.random.default_rng(0).permutation(len(test.labels))[:args.eval_images])
    imgs = torch.from_numpy(np.ascontiguousarray(test.images[idx]))
    t0 = time.perf_counter()
    run_model(model, imgs)  # as a test report scores: ONNX Runtime on a CPU (utils.inference.scoring)
    out["eval_img_s"] = len(idx) / (time.perf_counter() - t0)
    out["eval_speedup"] = out["eval_img_s"] / out["seed_eval_img_s"]
    print(json.dumps({k: round(v, 3) for k, v in out.items() if k != "cpu"}), file=sys.stderr)
    if args.quick:
        print(json.dumps(out))
        return

    # 3. the whole job, wall clock, each in its own process: start-up, training, the test report
    seed_run = timed_process([sys.executable, __file__, "--seed-pipeline"])
    out["seed_pipeline_wall_s"], out["seed_pipeline_test_accuracy"] = seed_run["wall_s"], seed_run["accuracy"]
    print(f"seed pipeline: {seed_run['wall_s']:.1f} s wall, test accuracy {seed_run['accuracy']:.4f}", file=sys.stderr)
    run_dir = Path("runs/bench-one-pass")
    ours = timed_process([sys.executable, "train.py", "--recipe", "one-pass", "--test-path", str(test_dir),
                          "--out", str(run_dir), "--no-progress"])
    history = json.loads((run_dir / "history.json").read_text())
    stages = history["stage_seconds"]
    out.update(one_pass_wall_s=ours["wall_s"], precision=history["precision"],
               one_pass_test_accuracy=json.loads((run_dir / "test_metrics.json").read_text())["accuracy"],
               one_pass_stages_s={"start-up and exit": ours["wall_s"] - sum(stages.values()), **stages})
    out["wall_speedup"] = out["seed_pipeline_wall_s"] / out["one_pass_wall_s"]
    out["at_seed_accuracy"] = out["one_pass_test_accuracy"] >= out["seed_pipeline_test_accuracy"]
    print(f"one-pass: {ours['wall_s']:.1f} s wall ({history['precision']}), test accuracy "
          f"{out['one_pass_test_accuracy']:.4f}; where its time went: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in out["one_pass_stages_s"].items()), file=sys.stderr)
    print(json.dumps(out))


def timed_process(command) -> dict:
    """Run `command` to the end; -> {wall_s, and the fields of the JSON object on its last stdout line}."""
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    last = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return {"wall_s": wall, **last}


def seed_pipeline():
    """The seed notebook's job in this process: model_2 trained 20 epochs on train-small with its loader,
    transforms and Adam, then its test report over the test folder through ImageFolder. Prints the accuracy."""
    torch.manual_seed(0)
    net = build_model("model_2")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loader = seed_loader(resolve_split("train-small"), True)
    for _ in range(20):
        seed_train_epoch(net, loader, opt)
    accuracy, _ = seed_eval(net, seed_loader(resolve_split("test"), False))
    print(json.dumps({"accuracy": accuracy}))


if __name__ == "__main__":
    main()

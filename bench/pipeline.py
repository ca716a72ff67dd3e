#!/usr/bin/env python
"""The seed's data pipeline against ours, side by side in one run, same threads, model_2.

1. training and evaluation images/s: seed-style ImageFolder + DataLoader (its transforms, batch 64) vs the
   uint8 cache + batch augmentation;
2. our training images/s as a fraction of model_2's compute ceiling (one batch already in memory);
3. time to the seed's own test accuracy (86.87%): the seed's pipeline and settings on train-small (its
   snapshots checked on the full test split every --check-every epochs), vs our `one-pass` recipe for
   model_2 (fixed in advance, chosen on validation), evaluated once on the full test split.
The last line is one JSON object. Figures, not assertions: compare ratios, since CPUs differ.
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from data import Batches, load_folder, resolve_split  # noqa: E402
from models import ImageClassifier, build_model, probabilities  # noqa: E402
from utils.inference import run_model  # noqa: E402
from utils.config import make_config  # noqa: E402
from utils.train_loop import make_optimizer  # noqa: E402
from utils.training import train  # noqa: E402

SEED_TEST_ACCURACY = 0.8687


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


def seed_net_test_accuracy(net, test):
    """A seed-trained network (P(REAL) output, 0..1 input) on the cached test split."""
    model = ImageClassifier(net, [0.0] * 3, [1.0] * 3)
    real_prob = probabilities(run_model(model, test.images))[:, 1].numpy()
    pred_fake = (real_prob <= 0.5).astype(np.int64)
    return float((pred_fake == test.labels).mean())  # our labels: REAL=0, FAKE=1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval-images", type=int, default=4000, help="test images for the eval-speed comparison")
    p.add_argument("--check-every", type=int, default=4, help="seed snapshots checked every N epochs")
    p.add_argument("--quick", action="store_true", help="speeds only, no time-to-accuracy (seconds, not minutes)")
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    small_dir, test_dir = resolve_split("train-small"), resolve_split("test")
    small = load_folder(small_dir)
    test = load_folder(test_dir)
    out = {}

    # 1. training speed, one epoch of train-small each
    net = build_model("model_2")
    n, s = seed_train_epoch(net, seed_loader(small_dir, True), torch.optim.Adam(net.parameters(), 1e-3))
    out["seed_train_img_s"] = n / s
    model = ImageClassifier(build_model("model_2"), [0.5] * 3, [0.25] * 3)
    opt = make_optimizer(model, make_config(lr=2e-3), "cpu")
    loss_fn = nn.BCEWithLogitsLoss()
    batches = Batches(small.images, small.labels, 128, shuffle=True, hflip=True)
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
    run_model(model, imgs)  # batch size: eval_batch_size (64 on a CPU)
    out["eval_img_s"] = len(idx) / (time.perf_counter() - t0)
    out["eval_speedup"] = out["eval_img_s"] / out["seed_eval_img_s"]
    print(json.dumps({k: round(v, 3) for k, v in out.items()}), file=sys.stderr)
    if args.quick:
        print(json.dumps(out))
        return

    # 3. time to the seed's accuracy
    torch.manual_seed(0)
    net = build_model("model_2")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loader = seed_loader(small_dir, True)
    elapsed, seed_curve = 0.0, []
    out["seed_time_to_seed_acc_s"] = None
    for epoch in range(1, 21):
        elapsed += seed_train_epoch(net, loader, opt)[1]
        if epoch % args.check_every == 0:
            acc = seed_net_test_accuracy(copy.deepcopy(net), test)
            seed_curve.append({"epoch": epoch, "train_s": round(elapsed, 1), "test_accuracy": acc})
            print(f"seed pipeline: epoch {epoch}, {elapsed:.0f}s, test accuracy {acc:.4f}", file=sys.stderr)
            if acc >= SEED_TEST_ACCURACY and out["seed_time_to_seed_acc_s"] is None:
                out["seed_time_to_seed_acc_s"] = elapsed
    out["seed_curve"] = seed_curve
    ours = train(recipe="one-pass", test_path=str(test_dir),
                 out="runs/bench-one-pass", progress=False)
    out["one_pass_train_s"] = sum(h["train_seconds"] for h in ours["history"])
    out["one_pass_test_accuracy"] = ours["test_metrics"]["accuracy"]
    reached = out["one_pass_test_accuracy"] >= SEED_TEST_ACCURACY
    out["time_to_seed_acc_s"] = out["one_pass_train_s"] if reached else None
    if out["seed_time_to_seed_acc_s"] and out["time_to_seed_acc_s"]:
        out["time_to_seed_acc_speedup"] = out["seed_time_to_seed_acc_s"] / out["time_to_seed_acc_s"]
    else:
        out["time_to_seed_acc_speedup"] = None
    print(json.dumps(out))


if __name__ == "__main__":
    main()

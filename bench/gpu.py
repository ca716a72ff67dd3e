#!/usr/bin/env python
"""GPU figures (CUDA only; prints a clear skip elsewhere and exits 0).

1. training images/s of each model at a few batch sizes: uint8 batches already on the GPU, channels_last,
   AMP (bf16 where supported, else fp16), one optimizer step each, optionally torch.compile'd;
2. time to 98.5% test accuracy: the best recipe trained on the GPU with the whole training tensor resident
   there, the test split scored after every epoch (for the chart, timed apart). The last line is JSON.
"""
import argparse
import json
import sys
import time

import torch
from time_to_accuracy import TestChart  # noqa: E402  (bench/ is the script's own folder)

from data import load_folder, resolve_split
from models import ImageClassifier, build_model, loss_function
from utils.training.config import make_config
from utils.training.run import train

TARGET = 0.985


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(model_name, batch_size, compile_model, device, steps=30):
    model = ImageClassifier(build_model(model_name), [0.5] * 3, [0.25] * 3).to(device).train()
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = loss_function(2)
    x = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step():
        with torch.autocast(device.type, dtype=dtype):
            loss = loss_fn(step_model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    sync(device)
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch_size * steps / (time.perf_counter() - t0), warmup


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="model_2,fullres_cnn,fullres_cnn_x2,fullres_cnn_x4",
                   help="models of the throughput table ('' skips it)")
    p.add_argument("--batch-sizes", default="128,512,2048")
    # the time-to-98.5% run is recipe gpu (utils/training/config.py); these flags override it
    p.add_argument("--epochs", type=int, help="epochs of the time-to-98.5%% run (recipe gpu: 30; 0 skips the run)")
    p.add_argument("--model", help="model of the time-to-98.5%% run (recipe gpu: fullres_cnn_x8_pool_first)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--robust", type=float, help="robust training share (train.py --robust)")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--train-path")
    p.add_argument("--out", default="runs/bench/gpu", help="run folder of the time-to-98.5%% run")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N; cpu only to smoke-test this script")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA device here (bench/gpu.py measures GPU throughput and time to 98.5%; "
              "run it on a machine with an NVIDIA GPU)")
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    throughput = {}
    for model_name in filter(None, args.models.split(",")):
        for bs in map(int, args.batch_sizes.split(",")):
            rate, warmup = images_per_s(model_name, bs, args.compile, device)
            throughput[f"{model_name}@{bs}"] = round(rate)
            print(f"{model_name:>18} batch {bs:>5}: {rate:>10,.0f} img/s (warm-up {warmup:.1f} s)", flush=True)
    result = {"device": name, "train_img_s": throughput}
    config = make_config("gpu", model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         robust=args.robust, label_smoothing=args.label_smoothing, train_path=args.train_path,
                         test_path="none", compile=args.compile or None, device=str(device), progress=False,
                         out=args.out)
    if args.epochs != 0:
        test = load_folder(resolve_split("test"), verbose=False)
        chart = TestChart(test, config.model, batch_size=4096, device=str(device))
        r = train(config, on_epoch=chart)
        reached = [c["seconds"] for c in chart.points if c["test_accuracy"] >= TARGET]
        best = r["best_val"]["epoch"]  # the checkpoint kept: chosen on validation
        result.update(recipe="gpu", config={k: getattr(config, k) for k in ("model", "epochs", "batch_size", "lr",
                                                                               "robust", "label_smoothing")},
                      chart=chart.points, best_val=r["best_val"]["accuracy"], best_epoch=best,
                      test_acc_of_best=chart.points[best - 1]["test_accuracy"], precision=r["precision"],
                      provenance=r["provenance"], time_to_985_s=reached[0] if reached else None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

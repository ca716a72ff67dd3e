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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from data import load_folder, resolve_split  # noqa: E402
from models import ImageClassifier, build_model, loss_function  # noqa: E402
from time_to_accuracy import TestChart  # noqa: E402  (bench/ is the script's own folder)
from utils.training import make_config, train  # noqa: E402

TARGET = 0.985


def images_per_s(model_name, batch_size, compile_model, steps=30):
    device = torch.device("cuda")
    model = ImageClassifier(build_model(model_name), [0.5] * 3, [0.25] * 3).to(device).train()
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = loss_function(2)
    x = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    def step():
        with torch.autocast("cuda", dtype=dtype):
            loss = loss_fn(step_model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - t0), warmup


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="model_2,fullres_cnn,fullres_cnn_wide,fullres_cnn_x2")
    p.add_argument("--batch-sizes", default="256,1024,4096")
    p.add_argument("--epochs", type=int, default=16, help="epochs of the time-to-98.5%% run (0: skip it)")
    p.add_argument("--model", default="fullres_cnn_x2", help="model of the time-to-98.5%% run")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device here (bench/gpu.py measures GPU throughput and time to 98.5%; "
              "run it on a machine with an NVIDIA GPU)")
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    name = torch.cuda.get_device_name()
    print(f"device: {name}; torch {torch.__version__}; bf16 {torch.cuda.is_bf16_supported()}", flush=True)
    throughput = {}
    for model_name in args.models.split(","):
        for bs in map(int, args.batch_sizes.split(",")):
            rate, warmup = images_per_s(model_name, bs, args.compile)
            throughput[f"{model_name}@{bs}"] = round(rate)
            print(f"{model_name:>18} batch {bs:>5}: {rate:>10,.0f} img/s (warm-up {warmup:.1f} s)", flush=True)
    result = {"device": name, "train_img_s": throughput}
    if args.epochs:
        test = load_folder(resolve_split("test"), verbose=False)
        chart = TestChart(test, args.model, batch_size=4096, device="cuda")
        r = train(make_config(model=args.model, train_path="train", test_path="none", epochs=args.epochs,
                              batch_size=args.batch_size, lr=3e-3, ema=0.999, tta="flip", compile=args.compile,
                              device="cuda", progress=False, out="runs/bench/gpu"), on_epoch=chart)
        reached = [c["seconds"] for c in chart.points if c["test_accuracy"] >= TARGET]
        result.update(model=args.model, epochs=args.epochs, chart=chart.points, best_val=r["best_val"]["accuracy"],
                      time_to_985_s=reached[0] if reached else None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Training and scoring images/s on this CPU, for `model_2`, `fullres_cnn` and the shipped default detector
(its two parts' networks for training; the joined detector, edit map included, for scoring), in one run.

Scoring is measured on the same test images by both engines of utils.inference.scoring: PyTorch's eager forward in
batches of 64 (the path before ONNX Runtime was added; still the path for a handful of files) and `auto` (what
evaluate.py, the test report and validation use: ONNX Runtime for a large set on a CPU). Training is the
training step of utils.training.loop (fused AdamW, channels-last) on batches of the recipe's size, in fp32, and in
bf16 where the CPU runs it natively. The first line says which CPU; to measure an AVX2-only CPU on a newer one:
`ONEDNN_MAX_CPU_ISA=AVX2 python bench/scoring.py`. The last line is one JSON object.

    python bench/scoring.py [--images 8192] [--steps 40]
"""
import argparse
import json
import time

import numpy as np
import torch

from data import load_folder, resolve_split
from models import ImageClassifier, build_model, loss_function
from shipping.detectors import detector_path
from utils.inference.checkpoint import DEFAULT_DETECTOR, load_classifier
from utils.inference.scoring import run_model
from utils.training.config import make_config
from utils.training.optimization import make_optimizer
from utils.training.precision import cpu_autocast, cpu_has_native_bf16, cpu_line, describe_cpu

# name -> (network, classes, batch size of the recipe that trains it)
TRAINED = {"model_2": ("model_2", 2, 64), "fullres_cnn": ("fullres_cnn", 2, 128),
           f"{DEFAULT_DETECTOR}: real vs fake": ("fullres_cnn_x2_pool_first", 2, 128),
           f"{DEFAULT_DETECTOR}: localiser": ("edit_map_srm", 3, 128)}


def scoring_rate(model, images, engine, with_map=False) -> float:
    run_model(model, images[:256], engine=engine, with_map=with_map)  # warm-up: first-call allocations
    t0 = time.perf_counter()
    run_model(model, images, engine=engine, with_map=with_map)  # auto: the export is inside the timing
    return len(images) / (time.perf_counter() - t0)


def training_rate(network, classes, batch_size, images, labels, steps, dtype) -> float:
    model = ImageClassifier(build_model(network, classes), [0.5] * 3, [0.25] * 3).train()
    optimizer = make_optimizer(model, make_config(), "cpu")
    loss_fn = loss_function(classes)
    x, y = images[:batch_size], torch.as_tensor(labels[:batch_size] % classes)
    with_map = model.has_edit_map

    def step():
        with cpu_autocast(dtype):
            out = model(x, with_map=True)[0] if with_map else model(x)
            loss = loss_fn(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=8192, help="test images scored by each engine")
    p.add_argument("--steps", type=int, default=40, help="training steps timed per network and precision")
    args = p.parse_args()
    cpu = describe_cpu()
    print(f"# {cpu_line(cpu)}; torch {torch.__version__}", flush=True)
    test = load_folder(resolve_split("test"), verbose=False)
    idx = np.sort(np.random.default_rng(0).permutation(len(test.labels))[:args.images])
    images = torch.from_numpy(np.ascontiguousarray(test.images[idx]))
    labels = np.asarray(test.labels)[idx]
    scored = {"model_2": (ImageClassifier(build_model("model_2"), [0.5] * 3, [0.25] * 3), False),
              "fullres_cnn": (ImageClassifier(build_model("fullres_cnn"), [0.5] * 3, [0.25] * 3), False)}
    if detector_path().is_file():
        model, _ = load_classifier(detector_path())
        scored[DEFAULT_DETECTOR] = (model, model.has_edit_map)
    else:
        print(f"# {detector_path()} not found: the shipped detector is not measured", flush=True)
    rows = {}
    print(f"{'scoring':<32} {'eager, 64 a batch':>18} {'auto':>10} {'ratio':>6}")
    for name, (model, with_map) in scored.items():
        before, after = (scoring_rate(model, images, e, with_map) for e in ("eager", "auto"))
        rows[name] = {"score_eager_img_s": round(before), "score_auto_img_s": round(after),
                      "score_ratio": round(after / before, 2)}
        print(f"{name:<32} {before:>18,.0f} {after:>10,.0f} {after / before:>5.2f}x", flush=True)
    precisions = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if cpu_has_native_bf16() else {})}
    print(f"{'training':<32} " + " ".join(f"{k:>10}" for k in precisions))
    for name, (network, classes, batch) in TRAINED.items():
        rates = {k: training_rate(network, classes, batch, images, labels, args.steps, d)
                 for k, d in precisions.items()}
        rows.setdefault(name, {}).update({f"train_{k}_img_s": round(v) for k, v in rates.items()})
        print(f"{name:<32} " + " ".join(f"{v:>10,.0f}" for v in rates.values()), flush=True)
    print(json.dumps({"cpu": cpu, "torch": str(torch.__version__), "models": rows}))


if __name__ == "__main__":
    main()

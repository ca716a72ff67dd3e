#!/usr/bin/env python
"""Test accuracy against CPU wall time for each model and recipe, and the robustness table.

Each run trains on the full `train` split (validation carved from it; the checkpoint is chosen on validation)
and after every epoch its validated model is also scored on `test` for the chart. That scoring is timed
apart and left out of the minutes: `minutes` is training + validation + calibration wall time. The last line
is one JSON object with the headline figures (the best run is chosen on validation). Runs:
"""
import argparse
import json
import sys
import time

import torch

from data import load_folder, resolve_split
from models import build_model, probabilities
from utils.inference.evaluation import robustness, validation_robustness
from utils.inference.metrics import format_robustness
from utils.inference.scoring import run_model
from utils.inference.verdict import decide
from utils.training.config import make_config
from utils.training.precision import cpu_line, describe_cpu
from utils.training.run import RUNS_DIR, train

# Each run is a recipe of utils/training/config.py by name (with overrides), trained on the full `train` split. The long
# recipes train for as many epochs as fit their budget on the machine at hand (measured before they start), so
# "accuracy in 20 CPU minutes" holds on a slow CPU too; validation and calibration fit inside.
RUNS = {
    "sprint": dict(about="recipe sprint (fullres_cnn, one cycle over 50k images, whitened start): the time-to-93% "
                         "run, three seeds", recipe="sprint", seeds=(0, 1, 2)),
    "fast": dict(about="recipe fast (fullres_cnn, 2 epochs, whitened start)", recipe="fast"),
    "best": dict(about="recipe best (fullres_cnn_x2_pool_first, as many epochs as fit 18 minutes)", recipe="best",
                 robustness=True),
    "robust": dict(about="recipe robust (best with JPEG/resize/blur each on 40% of every batch)", recipe="robust",
                   robustness=True),
    # shift TTA helps model_2, whose flattening head is position-sensitive, not the global-pooling fullres models
    "model_2": dict(about="the seed's model_2, architecture unchanged, with recipe best and flip-shift TTA",
                    recipe="best", overrides=dict(model="model_2", tta="flip-shift")),
}
__doc__ += "\n".join(f"  {k}: {v['about']}" for k, v in RUNS.items())


def mmacs(model_name) -> float:
    """Multiply-accumulates per 32x32 image (convolutions and linear layers), in millions."""
    net, total = build_model(model_name).eval(), 0

    def hook(m, _, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features
    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return total / 1e6


class TestChart:
    """`train(..., on_epoch=chart)`: scores the validated model on the test images after every epoch and
    records (epoch, seconds, val and test accuracy), the scoring time left out of `seconds`."""

    def __init__(self, test, label, batch_size=None, device="cpu"):
        self.test, self.label, self.batch_size, self.device = test, label, batch_size, device
        self.points, self.scoring, self.start = [], 0.0, time.perf_counter()

    def elapsed(self) -> float:
        """Wall seconds since the start, less the time spent scoring for the chart."""
        return time.perf_counter() - self.start - self.scoring

    def __call__(self, row, model):
        t0 = time.perf_counter()
        probs = probabilities(run_model(model, self.test.images, self.batch_size, self.device))
        accuracy = float((decide(probs) == torch.as_tensor(self.test.labels)).float().mean())
        self.scoring += time.perf_counter() - t0
        self.points.append({"epoch": row["epoch"], "seconds": round(self.elapsed(), 1),
                            "val_accuracy": row["val_accuracy"], "test_accuracy": accuracy})
        print(f"  [{self.label}] epoch {row['epoch']}: {self.points[-1]['seconds']:.0f} s, val "
              f"{row['val_accuracy']:.4f}, test {accuracy:.4f}", file=sys.stderr, flush=True)


def run(name, spec, test, quick, seed=None):
    """Train one run of the bench (one seed of a multi-seed run) -> its summary, also in <run folder>/bench.json."""
    overrides = dict(spec.get("overrides", {}), **({} if seed is None else {"seed": seed}))
    label = name if seed is None else f"{name}-seed{seed}"
    # smoke runs write apart, so --reuse can never mistake one for a measured run
    out = RUNS_DIR / ("bench-quick" if quick else "bench") / label
    smoke = dict(max_train_images=2000, epochs=1, budget_minutes=0) if quick else {}  # a few thousand images
    config = make_config(spec["recipe"], **overrides, **smoke, test_path="test", out=str(out), progress=False)
    chart = TestChart(test, label)
    result = train(config, on_epoch=chart)
    m = result["test_metrics"]
    seconds = chart.elapsed() - m["n"] / m["images_per_s"]  # less the final test report
    summary = {"name": label, "run": name, "seed": config.seed, "about": spec["about"], "model": config.model,
               "parameters": result["parameters"], "epochs": len(result["history"]), "precision": result["precision"],
               "mmacs": round(mmacs(config.model), 1), "minutes": round(seconds / 60, 2),
               "best_val_accuracy": result["best_val"]["accuracy"], "best_epoch": result["best_val"]["epoch"],
               "test_accuracy": m["accuracy"], "roc_auc": m["roc_auc"], "ece": m.get("ece"), "chart": chart.points,
               "provenance": result["provenance"],
               "command": f"python train.py --recipe {spec['recipe']} " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in overrides.items())}
    if spec.get("robustness") and not quick:
        # on validation (where robust settings are compared) and on test (reported)
        summary["validation_robustness"] = validation_robustness(result["checkpoint"])
        summary["robustness"] = robustness(result["checkpoint"], "test", verbose=False)
        print(format_robustness(summary["validation_robustness"] + summary["robustness"]), file=sys.stderr)
    (out / "bench.json").write_text(json.dumps(summary, indent=1))
    return summary


def time_to(summaries, accuracy=0.93) -> dict:
    """Per seed of the sprint run, the seconds at which its test accuracy first reached `accuracy` (None: never),
    with their mean and range: a figure of every seed, not the best of several."""
    per_seed = {s["seed"]: next((c["seconds"] for c in s["chart"] if c["test_accuracy"] >= accuracy), None)
                for s in summaries if s.get("run", s["name"]) == "sprint"}
    reached = [v for v in per_seed.values() if v is not None]
    return {"per_seed": per_seed, "mean": round(sum(reached) / len(reached), 1) if len(reached) == len(per_seed)
            and reached else None, "range": [min(reached), max(reached)] if reached else None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of: " + ", ".join(RUNS))
    p.add_argument("--reuse", action="store_true",
                   help="take a run's figures from runs/bench/<run>/bench.json when it exists (said in the output)")
    p.add_argument("--quick", action="store_true", help="smoke test: 2,000 images, one epoch a run")
    args = p.parse_args()
    cpu = describe_cpu()
    print(f"# {cpu_line(cpu)}; torch {torch.__version__}", flush=True)
    test = load_folder(resolve_split("test"), verbose=False)
    summaries = []
    for name in args.runs.split(","):
        for seed in RUNS[name].get("seeds", (None,)):
            saved = RUNS_DIR / "bench" / (name if seed is None else f"{name}-seed{seed}") / "bench.json"
            if args.reuse and saved.exists():
                print(f"{saved.parent.name}: reusing {saved}", file=sys.stderr)
                summaries.append(json.loads(saved.read_text()))
            else:
                summaries.append(run(name, RUNS[name], test, args.quick, seed))
    print(f"{'run':<12} {'model':<25} {'params':>9} {'MMACs':>6} {'epochs':>6} {'prec.':>5} {'minutes':>7} "
          f"{'val acc':>8} {'test acc':>8} "
          f"{'ROC-AUC':>8} {'ECE':>7}  (chart: seconds -> test accuracy)")
    for s in summaries:
        chart = " ".join(f"{c['seconds']:.0f}s:{c['test_accuracy']:.4f}" for c in s["chart"])
        print(f"{s['name']:<12} {s['model']:<25} {s['parameters']:>9,} {s['mmacs']:>6} {s.get('epochs', '?'):>6} "
              f"{s.get('precision', '?'):>5} {s['minutes']:>7.2f} "
              f"{s['best_val_accuracy']:>8.4f} {s['test_accuracy']:>8.4f} {s['roc_auc']:>8.4f} "
              f"{s['ece'] or 0:>7.4f}  {chart}")
    for s in summaries:
        if "robustness" in s:
            rows = s.get("validation_robustness", []) + s["robustness"]
            print(f"robustness of {s['name']}:\n" + format_robustness(rows))
    best = max(summaries, key=lambda s: s["best_val_accuracy"])  # chosen on validation, reported on test
    to_93 = time_to(summaries)
    robust = next((s for s in summaries if s["name"] == "robust"), None)
    rob = ({r["set"].rsplit("-", 1)[-1]: r["accuracy"] for r in robust["robustness"]}
           if robust and "robustness" in robust else {})
    print(json.dumps({"cpu": cpu_line(cpu), "precision": {s["name"]: s.get("precision") for s in summaries},
                      "best_run": best["name"], "best_test_acc": best["test_accuracy"], "minutes": best["minutes"],
                      "time_to_93_s": to_93["mean"], "time_to_93_s_range": to_93["range"],
                      "time_to_93_s_per_seed": to_93["per_seed"], "jpeg75_acc": rob.get("jpeg75"),
                      "resize_acc": rob.get("resize"), "robust_clean_acc": rob.get("test"), "ece": best["ece"]}))


if __name__ == "__main__":
    main()

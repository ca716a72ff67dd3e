"""`train(...)`: the one training loop used by train.py, the notebook and the tests.

Data comes from the uint8 cache, split into train and a seeded validation part; the checkpoint kept is the
best on validation (accuracy, ties to the lower loss). The test split is only ever reported, never used to
choose anything.
"""
import dataclasses
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data import Batches, DataError, default_test_path, load_folder, resolve_split, split_train_val
from data.images import IMAGE_SIZE
from data.sources import REPO_ROOT
from models import (ImageClassifier, build_model, count_parameters, decide, fit_temperature, loss_function,
                    probabilities)
from utils import distributed
from utils.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from utils.inference import evaluate, run_model, select_device
from utils.metrics import classification_metrics, expected_calibration_error, format_metrics

RUNS_DIR = REPO_ROOT / "runs"


@dataclass
class TrainConfig:
    model: str = "model_2"
    train_path: str = "train-medium"
    test_path: str = None          # None: the seed's pairing (train* -> test); "" or "none": no test report
    recipe: str = "default"
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-2
    schedule: str = "onecycle"     # onecycle | cosine | none
    hflip: bool = True
    vflip: bool = False
    crop_padding: int = 0
    sharpness: list = None         # [factor, probability], the seed's RandomAdjustSharpness
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    out: str = None                # run folder; default runs/<model>-<train split>-<time>
    resume: bool = False
    max_train_images: int = 0      # 0: all; else a seeded subset of the training part (quick experiments)
    balance: bool = False          # weight the loss inversely to class frequency (EDITED is a minority)
    tune_threshold: bool = False   # two classes: pick the decision threshold with the best validation balanced accuracy
    sync_bn: bool = False          # torchrun on CUDA: BatchNorm statistics over all ranks' batches
    calibrate: bool = True         # fit a temperature on the validation split so that probabilities are calibrated
    progress: bool = True


# Recipes are named sets of defaults; explicit arguments override them.
RECIPES = {
    # chosen on the validation split of train-medium (see README, "How the defaults were chosen")
    "default": {},
    # a fixed budget: one pass over 10k images of the training folder (for `train`: time-to-accuracy)
    "fast": dict(epochs=1, max_train_images=10000, lr=4e-3, weight_decay=5e-4),
    # the seed notebook: Adam 1e-3, batch 64, no schedule, h+v flips and sharpness jitter, 20 epochs
    "seed": dict(epochs=20, batch_size=64, lr=1e-3, weight_decay=0.0, schedule="none", hflip=True, vflip=True,
                 crop_padding=0, sharpness=[1.2, 0.3]),
}


def make_config(recipe="default", **overrides) -> TrainConfig:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(overrides) - known
    if bad:
        raise TypeError(f"unknown training option(s): {', '.join(sorted(bad))}")
    values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(recipe=recipe, **values)


def channel_stats(images: np.ndarray, chunk=8192):
    """Per-channel mean and std of uint8 images (N, 3, H, W), on the 0..1 scale."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for s in range(0, len(images), chunk):
        x = np.asarray(images[s:s + chunk], dtype=np.float64) / 255.0
        total += x.sum(axis=(0, 2, 3))
        total_sq += (x * x).sum(axis=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return mean.tolist(), std.tolist()


def _autocast(device):
    """Mixed precision on CUDA only (bf16 where supported, else fp16 with a gradient scaler)."""
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False), None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return torch.autocast("cuda", dtype=dtype), scaler


def _scheduler(optimizer, config, steps_per_epoch):
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total,
                                                   pct_start=0.25, anneal_strategy="linear")
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {config.schedule!r}; use onecycle, cosine or none")


def tune_threshold(labels, probs) -> float:
    """The P(positive) cut with the best balanced accuracy on these (validation) labels."""
    labels = np.asarray(labels)
    candidates = np.unique(np.concatenate([[0.5], np.quantile(probs[:, 1], np.linspace(0.01, 0.99, 197))]))
    scores = [classification_metrics(labels, probs, ["n", "p"], t)["balanced_accuracy"] for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def validate(model, images, labels, classes, loss_fn, device, batch_size=256) -> dict:
    logits = run_model(model, images, batch_size, device)
    y = torch.as_tensor(np.asarray(labels))
    metrics = classification_metrics(y.numpy(), probabilities(logits).numpy(), classes)
    metrics["loss"] = float(loss_fn(logits, y))
    return metrics


def train(config: TrainConfig = None, **overrides) -> dict:
    """Train a model; returns {run_dir, checkpoint, history, best_val, test_metrics, parameters}.

    Call as `train(model="model_2", train_path="train-small", epochs=3)` or with a TrainConfig.
    """
    if config is None:
        config = make_config(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    device = distributed.setup(select_device(config.device))  # joins the process group under torchrun
    main = distributed.is_main()  # only rank 0 prints and writes files

    def log(msg):  # progress and logs on stderr, results on stdout
        if main:
            print(msg, file=sys.stderr)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)

    with distributed.main_first():
        folder = load_folder(resolve_split(config.train_path), verbose=main)
    classes = folder.classes
    if len(classes) < 2:
        raise DataError(f"{folder.root}: training needs at least two class folders, found {classes}")
    train_idx, val_idx = split_train_val(folder.labels, config.val_fraction, config.seed)
    if config.max_train_images and config.max_train_images < len(train_idx):
        rng = np.random.default_rng(config.seed + 1)
        train_idx = np.sort(rng.choice(train_idx, config.max_train_images, replace=False))
    if len(val_idx) == 0:
        raise DataError("the validation split is empty: use a val_fraction above 0 with at least 2 images a class")
    # Gather once into RAM: random access into the training part is then a plain tensor index.
    train_images = torch.from_numpy(np.ascontiguousarray(folder.images[train_idx]))
    val_images = torch.from_numpy(np.ascontiguousarray(folder.images[val_idx]))
    train_labels, val_labels = folder.labels[train_idx], folder.labels[val_idx]

    run_dir = Path(distributed.broadcast_object(str(config.out) if config.out else RUNS_DIR / (
        f"{config.model}-{Path(str(config.train_path)).name}-{time.strftime('%Y%m%d-%H%M%S')}")))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "checkpoint.pt"

    mean, std = channel_stats(train_images.numpy())
    model = ImageClassifier(build_model(config.model, len(classes)), mean, std).to(device)
    n_params = count_parameters(model)
    log(f"model {config.model}: {n_params:,} parameters; classes {classes} "
        + (f"(P({classes[1]}) is the output, {classes[0]} is negative)" if len(classes) == 2 else "(softmax)"))
    log(f"train {len(train_idx)} / validation {len(val_idx)} images; device {device}; run folder {run_dir}")
    world = distributed.world_size()
    if world > 1:
        if config.sync_bn:
            if device.type != "cuda":
                raise DataError("--sync-bn needs CUDA (NCCL); on the CPU each rank keeps its own BatchNorm statistics")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        log(f"DistributedDataParallel over {world} processes ({'NCCL' if device.type == 'cuda' else 'gloo'}), "
            f"{config.batch_size} images a step on each")
    # the forward pass of training; evaluation and checkpoints use the bare `model` (same parameters)
    trained = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model

    batches = Batches(train_images, train_labels, config.batch_size, shuffle=True, seed=config.seed,
                      hflip=config.hflip, vflip=config.vflip, crop_padding=config.crop_padding,
                      sharpness=config.sharpness, device=device, rank=distributed.rank(), world_size=world)
    if config.recipe == "seed":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _scheduler(optimizer, config, len(batches))
    loss_fn = loss_function(len(classes), np.bincount(train_labels, minlength=len(classes)) if config.balance else None)
    autocast, scaler = _autocast(device)
    config_dict = dataclasses.asdict(config)

    # bars on a terminal or in a notebook; in a log file the per-epoch line says it all
    show_bars = config.progress and (sys.stderr.isatty() or "ipykernel" in sys.modules)
    history, best, start_epoch = [], None, 0
    if config.resume and last_path.exists():
        state = load_checkpoint(last_path)
        if state["model_name"] != config.model or state["classes"] != classes:
            raise DataError(f"{last_path}: cannot resume: it is {state['model_name']} on {state['classes']}")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler:  # rebuilt for the requested epochs and fast-forwarded, so a run can also be extended
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(state["epoch"] * len(batches)):
                    scheduler.step()
        torch.set_rng_state(state["rng"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
        batches.epoch = start_epoch
        log(f"resumed from {last_path} after epoch {start_epoch}")

    for epoch in range(start_epoch, config.epochs):
        model.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", file=sys.stderr,
                   disable=not show_bars, leave=False)
        for x, y in bar:
            with autocast:
                logits = trained(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if scheduler:
                scheduler.step()
            with torch.no_grad():
                pred = decide(probabilities(logits))
                correct += int((pred == y).sum())
                seen += len(y)
                loss_sum += float(loss) * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        train_seconds = time.perf_counter() - t0
        loss_sum, correct, seen = distributed.sum_across([loss_sum, correct, seen], device)
        distributed.broadcast_buffers(model)  # every rank validates rank 0's BatchNorm statistics
        val = validate(model, val_images, val_labels, classes, loss_fn, device)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val["loss"], "val_accuracy": val["accuracy"],
               "val_balanced_accuracy": val["balanced_accuracy"], "val_roc_auc": val["roc_auc"],
               "lr": optimizer.param_groups[0]["lr"], "train_images": int(seen), "train_seconds": train_seconds,
               "train_images_per_s": seen / train_seconds, "epoch_seconds": time.perf_counter() - t0}
        history.append(row)
        improved = best is None or (val["accuracy"], -val["loss"]) > (best["accuracy"], -best["loss"])
        log(f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f" | val loss {val['loss']:.4f} acc {val['accuracy']:.4f} auc {val['roc_auc'] or float('nan'):.4f}"
            f" | {row['train_images_per_s']:.0f} img/s, {row['epoch_seconds']:.1f}s" + (" *best" if improved else ""))
        if improved:
            best = {k: val[k] for k in ("accuracy", "balanced_accuracy", "roc_auc", "loss", "f1", "n")}
            best["epoch"] = epoch + 1
        if not main:
            continue
        if improved:
            save_checkpoint(make_checkpoint(model, config.model, classes, IMAGE_SIZE, config_dict, best,
                                            epoch + 1), best_path)
        state = make_checkpoint(model, config.model, classes, IMAGE_SIZE, config_dict, best, epoch + 1)
        state.update(optimizer=optimizer.state_dict(), rng=torch.get_rng_state(), history=history, best=best)
        save_checkpoint(state, last_path)
        (run_dir / "history.json").write_text(json.dumps({"config": config_dict, "classes": classes,
                                                         "parameters": n_params, "history": history,
                                                         "best_val": best}, indent=2))

    distributed.barrier()  # rank 0 has written the best checkpoint; every rank reads it from here on
    if config.calibrate or (config.tune_threshold and len(classes) == 2):
        best_ck = load_checkpoint(best_path)
        val_logits = run_model(model_from_checkpoint(best_ck, device), val_images, 256, device)
        if config.calibrate:
            before = expected_calibration_error(val_labels, probabilities(val_logits).numpy())
            best_ck["temperature"] = fit_temperature(val_logits, val_labels)
            val_logits = val_logits / best_ck["temperature"]
            after = expected_calibration_error(val_labels, probabilities(val_logits).numpy())
            best_ck["val_metrics"].update(ece_uncalibrated=before, ece=after)
            log(f"temperature {best_ck['temperature']:.3f} fitted on validation: ECE {before:.4f} -> {after:.4f}")
        if config.tune_threshold and len(classes) == 2:
            best_ck["threshold"] = tune_threshold(val_labels, probabilities(val_logits).numpy())
            log(f"decision threshold tuned on validation: P({classes[1]}) >= {best_ck['threshold']:.4f}")
        if main:
            save_checkpoint(best_ck, best_path)
        distributed.barrier()

    result = {"run_dir": str(run_dir), "checkpoint": str(best_path), "history": history, "best_val": best,
              "parameters": n_params, "classes": classes, "test_metrics": None}
    test_path = default_test_path(config.train_path) if config.test_path is None else config.test_path
    if test_path and str(test_path).lower() != "none":
        try:
            with distributed.main_first():
                test_dir = resolve_split(test_path)
                load_folder(test_dir, verbose=False)  # rank 0 builds the cache, the others memory-map it
        except DataError as e:
            log(f"no test report: {e}")
        else:
            best_ck = load_checkpoint(best_path)
            metrics = evaluate((model_from_checkpoint(best_ck, device), best_ck), test_dir, device=str(device),
                               verbose=main)
            result["test_metrics"] = metrics
            if main:
                (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2))
                print(f"test metrics of the best-on-validation checkpoint (epoch {best['epoch']}) on {test_dir}:")
                print(format_metrics(metrics))
    if main:
        print(f"run folder: {run_dir}  (checkpoint: {best_path})")
    return result

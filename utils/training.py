"""`train(...)`: the one training loop used by train.py, the notebook and the tests.

Data comes from the uint8 cache, split into train and a seeded validation part; the checkpoint kept is the
best on validation (accuracy, ties to the lower loss). The test split is only ever reported, never used to
choose anything.
"""
import copy
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
from models.whitening import whiten_first_conv
from utils import distributed
from utils.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from utils.inference import eval_batch_size, evaluate, run_model, select_device
from utils.metrics import classification_metrics, expected_calibration_error, format_metrics

RUNS_DIR = REPO_ROOT / "runs"


@dataclass
class TrainConfig:
    model: str = "model_2"
    train_path: str = "train-medium"
    test_path: str = None          # None: the seed's pairing (train* -> test); "" or "none": no test report
    recipe: str = "default"
    epochs: int = 8
    budget_minutes: float = 0.0    # > 0: as many epochs as fit this much wall time here (measured; overrides epochs)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-2
    schedule: str = "onecycle"     # onecycle | cosine | none
    hflip: bool = True
    vflip: bool = False
    crop_padding: int = 0
    sharpness: list = None         # [factor, probability], the seed's RandomAdjustSharpness
    robust: float = 0.0            # robust training: share of each batch JPEG re-saved, resized down/up, blurred (each)
    label_smoothing: float = 0.0
    ema: float = 0.0               # decay of an exponential moving average of the weights (0: off); the average is validated and saved
    whiten: bool = False           # start the first convolution as +- the training patches' whitening filters
    tta: str = "none"              # test-time augmentation in evaluation: none | flip | flip-shift (models.TTA_MODES)
    compile: bool = False          # torch.compile the training forward/backward (compile time reported apart)
    precision: str = "auto"        # auto | fp32 | bf16: AMP on CUDA; on a CPU bf16 only where it runs natively and measures faster
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
    # a fixed budget: one pass over 8.5k images of the training folder in batches of 64 (for `train`:
    # time-to-accuracy; chosen on validation, see README)
    "fast": dict(epochs=1, max_train_images=8500, batch_size=64, lr=3e-3, weight_decay=5e-4),
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


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU instructions that make bf16 convolutions fast (oneDNN's check)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _step_seconds(model, loss_fn, x, y, autocast, steps=3):
    """Seconds per training step of `model` on the batch (x, y) under `autocast` (weights restored afterwards)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with autocast:
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - t0)
    model.load_state_dict(state)
    return min(times[1:])


def cpu_autocast(dtype):
    return torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)


def epochs_for_budget(budget_seconds, steps_per_epoch, step_seconds, val_seconds, margin=0.85) -> int:
    """The number of epochs (at least 1) whose training steps and validations fit in `margin` of the budget.
    The margin covers what a probe step does not see: batch gathering, the EMA update, and the CPU's speed
    drifting (67-91 ms a step for the same fullres_cnn_x2 step over one hour on the AMX machine)."""
    return max(1, int(margin * budget_seconds // (steps_per_epoch * step_seconds + val_seconds)))


def choose_precision(config, device, model, loss_fn, batch, log):
    """-> (autocast context, gradient scaler or None). CUDA: AMP, bf16 where supported, else fp16 with a
    scaler. CPU: bf16 only when asked for, or with `auto` when the CPU has native bf16 and a few measured
    training steps run faster than fp32; else fp32."""
    if config.precision == "fp32":
        return torch.autocast(device.type, enabled=False), None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        log(f"precision: AMP {str(dtype).split('.')[-1]} on CUDA")
        return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    if device.type != "cpu":
        return torch.autocast(device.type, enabled=False), None
    if config.precision == "bf16":
        log("precision: bf16 autocast on the CPU (asked for)")
        return torch.autocast("cpu", dtype=torch.bfloat16), None
    if not cpu_has_native_bf16():
        log("precision: fp32 (this CPU has no native bf16: no AVX512-BF16 or AMX)")
        return torch.autocast("cpu", enabled=False), None
    x, y = batch
    fp32, bf16 = (_step_seconds(model, loss_fn, x, y, cpu_autocast(d)) for d in (torch.float32, torch.bfloat16))
    use = distributed.broadcast_object(bf16 < 0.9 * fp32)  # rank 0's measurement decides for every rank
    log(f"precision: {'bf16' if use else 'fp32'} (measured {fp32 * 1e3:.0f} ms a step in fp32, "
        f"{bf16 * 1e3:.0f} ms in bf16)")
    return cpu_autocast(torch.bfloat16 if use else torch.float32), None


def replan_epochs(budget_seconds, used_seconds, epoch_seconds, margin=0.92) -> int:
    """After the first epoch of a budgeted run: 1 + the epochs of the measured length that fit in what is left
    of `margin` of the budget. The first epoch's wall time includes everything the probe missed (batch
    gathering, the EMA, checkpoints), so the margin only has to cover the CPU's speed drifting."""
    return 1 + max(0, int((margin * budget_seconds - used_seconds) // max(epoch_seconds, 1e-9)))


def plan_epochs(config, batches, model, loss_fn, probe, val_images, autocast, device, log) -> int:
    """Epochs that fit `config.budget_minutes` of wall time on this machine, from a few measured training
    steps, the batch augmentation (robust training's JPEG round trips are a sixth of a step) and a timed
    slice of the validation images; rank 0's answer holds for every rank."""
    step_seconds = _step_seconds(model, loss_fn, *probe, autocast)
    if batches.augments:
        gen = torch.Generator().manual_seed(config.seed)
        t0 = time.perf_counter()
        for _ in range(3):
            batches.augment(probe[0], gen)
        step_seconds += (time.perf_counter() - t0) / 3
    sample = val_images[:4 * eval_batch_size(device)]
    t0 = time.perf_counter()
    run_model(model, sample, device=device)
    # run_model scores this rank's share of the sample, as validation will of the whole set
    val_seconds = (time.perf_counter() - t0) * len(val_images) / max(len(sample), 1)
    epochs = distributed.broadcast_object(
        epochs_for_budget(60 * config.budget_minutes, len(batches), step_seconds, val_seconds))
    log(f"time budget {config.budget_minutes:g} min: {epochs} epochs (measured {step_seconds * 1e3:.0f} ms a step, "
        f"{len(batches)} steps an epoch, {val_seconds:.1f} s to validate)")
    return epochs


@torch.no_grad()
def update_ema(ema, model, decay, step):
    """ema <- decay * ema + (1 - decay) * model, with the decay warmed up over the first steps (so the
    average is not anchored to the random initialisation); BatchNorm counters are copied."""
    decay = min(decay, (1 + step) / (10 + step))
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(m, 1 - decay)
        else:
            e.copy_(m)


def make_optimizer(model, config: TrainConfig, device) -> torch.optim.Optimizer:
    """AdamW (Adam for the seed recipe), fused: one kernel for all parameters, where torch would otherwise
    loop over them one by one on a CPU (model_2's update: 1 ms a step instead of 3.5)."""
    Adam = torch.optim.Adam if config.recipe == "seed" else torch.optim.AdamW
    return Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                fused=torch.device(device).type in ("cpu", "cuda"))


def _make_schedule(optimizer, config, steps_per_epoch):
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        if total < 5:  # too few steps to warm up and anneal (torch's one-cycle divides by zero at 4)
            return None
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total,
                                                   pct_start=0.25, anneal_strategy="linear")
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {config.schedule!r}; use onecycle, cosine or none")


def _scheduler(optimizer, config, steps_per_epoch, steps_done=0):
    """The lr schedule over config.epochs, stepped to `steps_done` (a resumed or re-planned run rebuilds it
    for its epoch count and fast-forwards; the lr warnings about step order are moot there)."""
    scheduler = _make_schedule(optimizer, config, steps_per_epoch)
    if scheduler and steps_done:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(steps_done):
                scheduler.step()
    return scheduler


def tune_threshold(labels, probs) -> float:
    """The P(positive) cut with the best balanced accuracy on these (validation) labels."""
    labels = np.asarray(labels)
    candidates = np.unique(np.concatenate([[0.5], np.quantile(probs[:, 1], np.linspace(0.01, 0.99, 197))]))
    scores = [classification_metrics(labels, probs, ["n", "p"], t)["balanced_accuracy"] for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def validate(model, images, labels, classes, loss_fn, device):
    """-> (metrics, logits): the logits are kept for calibrating the best epoch without scoring it again."""
    logits = run_model(model, images, device=device)
    y = torch.as_tensor(np.asarray(labels))
    metrics = classification_metrics(y.numpy(), probabilities(logits).numpy(), classes)
    metrics["loss"] = float(loss_fn(logits, y))
    return metrics, logits


def train(config: TrainConfig = None, on_epoch=None, **overrides) -> dict:
    """Train a model; returns {run_dir, checkpoint, history, best_val, test_metrics, parameters}.

    Call as `train(model="model_2", train_path="train-small", epochs=3)` or with a TrainConfig.
    `on_epoch(row, model)`, if given, is called after each epoch with its history row and the model that is
    validated (benchmarks use it to chart accuracy against time; it must not train the model).
    """
    started = time.perf_counter()  # a --budget-minutes budget counts from here
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
    mean, std = channel_stats(train_images.numpy())
    if device.type == "cuda":  # once: every batch is then gathered and augmented on the GPU, no host copies
        train_images = train_images.to(device)

    run_dir = Path(distributed.broadcast_object(str(config.out) if config.out else RUNS_DIR / (
        f"{config.model}-{Path(str(config.train_path)).name}-{time.strftime('%Y%m%d-%H%M%S')}")))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "checkpoint.pt"

    model = ImageClassifier(build_model(config.model, len(classes)), mean, std).to(device)
    model.tta = config.tta
    if config.whiten:  # an initialisation only: a resumed run then loads its trained weights over it
        log(whiten_first_conv(model, train_images, seed=config.seed))
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
    if config.compile:
        trained = torch.compile(trained)  # compiled at the first step, timed apart (compile_seconds)

    batches = Batches(train_images, train_labels, config.batch_size, shuffle=True, seed=config.seed,
                      hflip=config.hflip, vflip=config.vflip, crop_padding=config.crop_padding,
                      sharpness=config.sharpness, robust=config.robust, device=device, rank=distributed.rank(), world_size=world)
    optimizer = make_optimizer(model, config, device)
    loss_fn = loss_function(len(classes), np.bincount(train_labels, minlength=len(classes)) if config.balance else None,
                            config.label_smoothing)
    probe = (train_images[:config.batch_size].to(device), torch.as_tensor(train_labels[:config.batch_size]).to(device))
    autocast, scaler = choose_precision(config, device, model, loss_fn, probe, log)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast.fast_dtype] if autocast._enabled else "fp32"
    resuming = config.resume and last_path.exists()
    if config.budget_minutes and not resuming:  # a resumed run keeps the epochs its first part planned
        config = dataclasses.replace(config, epochs=plan_epochs(config, batches, model, loss_fn, probe,
                                                                val_images, autocast, device, log))
    scheduler = _scheduler(optimizer, config, len(batches))
    # the model that is validated and saved: an exponential moving average of the weights, or the weights
    averaged = copy.deepcopy(model) if config.ema else model
    config_dict = dataclasses.asdict(config)

    # bars on a terminal or in a notebook; in a log file the per-epoch line says it all
    show_bars = config.progress and (sys.stderr.isatty() or "ipykernel" in sys.modules)
    history, best, start_epoch = [], None, 0
    best_val_logits = None  # unknown when the best epoch came before a --resume
    if resuming:
        state = load_checkpoint(last_path)
        if state["model_name"] != config.model or state["classes"] != classes:
            raise DataError(f"{last_path}: cannot resume: it is {state['model_name']} on {state['classes']}")
        if config.budget_minutes:
            config = dataclasses.replace(config, epochs=state["config"]["epochs"])
            config_dict = dataclasses.asdict(config)
        model.load_state_dict(state["state_dict"])
        if config.ema:
            averaged.load_state_dict(state.get("ema_state_dict", state["state_dict"]))
        optimizer.load_state_dict(state["optimizer"])
        # rebuilt for the requested epochs over the loaded optimizer and fast-forwarded, so a run can also be
        # extended (even past a first run too short to have had a schedule)
        scheduler = _scheduler(optimizer, config, len(batches), state["epoch"] * len(batches))
        torch.set_rng_state(state["rng"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
        batches.epoch = start_epoch
        log(f"resumed from {last_path} after epoch {start_epoch}")

    callback_seconds = 0.0  # spent in on_epoch (a benchmark's own scoring): not the run's time
    epoch = start_epoch
    while epoch < config.epochs:  # a budgeted run re-plans config.epochs after its first epoch
        model.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", file=sys.stderr,
                   disable=not show_bars, leave=False)
        compile_seconds = 0.0
        step_lr = optimizer.param_groups[0]["lr"]
        for step, (x, y) in enumerate(bar, start=epoch * len(batches)):
            compiling = config.compile and epoch == start_epoch and step == epoch * len(batches)
            t_step = time.perf_counter()
            with autocast:
                logits = trained(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            step_lr = optimizer.param_groups[0]["lr"]  # the rate this step uses; the scheduler moves it after
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if scheduler:
                scheduler.step()
            if config.ema:
                update_ema(averaged, model, config.ema, step)
            if compiling:  # this process's first step compiled the graph
                compile_seconds = time.perf_counter() - t_step
                log(f"torch.compile: first step took {compile_seconds:.1f} s (compilation), not counted as training")
            with torch.no_grad():
                pred = decide(probabilities(logits))
                correct += int((pred == y).sum())
                seen += len(y)
                loss_sum += float(loss) * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        train_seconds = time.perf_counter() - t0 - compile_seconds
        loss_sum, correct, seen = distributed.sum_across([loss_sum, correct, seen], device)
        distributed.broadcast_buffers(averaged)  # every rank validates rank 0's BatchNorm statistics
        val, val_logits = validate(averaged, val_images, val_labels, classes, loss_fn, device)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val["loss"], "val_accuracy": val["accuracy"],
               "val_balanced_accuracy": val["balanced_accuracy"], "val_roc_auc": val["roc_auc"],
               "lr": step_lr, "train_images": int(seen), "train_seconds": train_seconds,
               "compile_seconds": compile_seconds,
               "train_images_per_s": seen / train_seconds, "epoch_seconds": time.perf_counter() - t0}
        history.append(row)
        if on_epoch is not None:
            t_callback = time.perf_counter()
            on_epoch(row, averaged)
            callback_seconds += time.perf_counter() - t_callback
        improved = best is None or (val["accuracy"], -val["loss"]) > (best["accuracy"], -best["loss"])
        log(f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f" | val loss {val['loss']:.4f} acc {val['accuracy']:.4f} auc {val['roc_auc'] or float('nan'):.4f}"
            f" | {row['train_images_per_s']:.0f} img/s, {row['epoch_seconds']:.1f}s" + (" *best" if improved else ""))
        if improved:
            best_val_logits = val_logits  # those of the checkpoint about to be written
            best = {k: val[k] for k in ("accuracy", "balanced_accuracy", "roc_auc", "loss", "f1", "n")}
            best["epoch"] = epoch + 1
        epoch += 1
        if config.budget_minutes and epoch == 1:  # the probe's plan, corrected by a whole measured epoch
            now = time.perf_counter()
            used, took = now - started - callback_seconds, now - t0 - callback_seconds
            planned = distributed.broadcast_object(replan_epochs(60 * config.budget_minutes, used, took))
            if planned != config.epochs:
                config = dataclasses.replace(config, epochs=planned)
                config_dict = dataclasses.asdict(config)
                scheduler = _scheduler(optimizer, config, len(batches), len(batches))
            log(f"time budget re-planned after epoch 1: {planned} epochs (it took {took:.1f} s; "
                f"{used:.1f} s of {60 * config.budget_minutes:g} used)")
        if not main:
            continue
        if improved:
            save_checkpoint(make_checkpoint(averaged, config.model, classes, IMAGE_SIZE, config_dict, best,
                                            epoch), best_path)
        state = make_checkpoint(model, config.model, classes, IMAGE_SIZE, config_dict, best, epoch)
        state.update(optimizer=optimizer.state_dict(), rng=torch.get_rng_state(), history=history, best=best)
        if config.ema:
            state["ema_state_dict"] = {k: v.detach().cpu() for k, v in averaged.state_dict().items()}
        save_checkpoint(state, last_path)
        (run_dir / "history.json").write_text(json.dumps({"config": config_dict, "classes": classes,
                                                         "parameters": n_params, "precision": precision,
                                                         "history": history,
                                                         "best_val": best}, indent=2))

    distributed.barrier()  # rank 0 has written the best checkpoint; every rank reads it from here on
    if config.calibrate or (config.tune_threshold and len(classes) == 2):
        best_ck = load_checkpoint(best_path)
        val_logits = best_val_logits if best_val_logits is not None else run_model(
            model_from_checkpoint(best_ck, device), val_images, device=device)
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
              "parameters": n_params, "classes": classes, "precision": precision, "test_metrics": None}
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

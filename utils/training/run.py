"""`train(...)`: one training run, used by train.py, the notebook, the bench and the tests.

Data comes from the uint8 cache, split into train and a seeded validation part; the checkpoint kept is the
best on validation (accuracy, ties to the lower loss), calibrated on validation. The test split is only ever
reported, never used to choose anything. The parts: utils.training.config (what to train), utils.training.training_data
(what it sees), utils.training.loop (the epoch loop and checkpoints), utils.training.budget and utils.training.precision
(how long, how fast), utils.training.calibration (temperature and threshold).
"""
import dataclasses
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from data import DataError, default_test_path, load_folder, resolve_split
from data.sources import REPO_ROOT
from models import probabilities
from utils import distributed
from utils.inference.checkpoint import model_from_checkpoint, save_checkpoint
from utils.inference.evaluation import evaluate
from utils.inference.metrics import format_metrics
from utils.inference.outside import fit_for_run
from utils.inference.scoring import run_model, select_device
from utils.training.calibration import calibrate
from utils.training.config import TrainConfig, make_config
from utils.training.diagnosis import diagnose
from utils.training.loop import Trainer
from utils.training.training_data import load_training_data

RUNS_DIR = REPO_ROOT / "runs"


class Stopwatch:
    """Wall seconds per stage of a run: `with clock("data"): ...`. The run's profile (history.json's
    stage_seconds, printed by bench/pipeline.py) says where a run's time goes."""

    def __init__(self):
        self.seconds = {}

    @contextmanager
    def __call__(self, stage):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def split_epochs(self, history):
        """The epochs' wall time cut into training steps, validation, and the rest (checkpoints, callbacks)."""
        total = self.seconds.pop("epochs", 0.0)
        self.seconds["training"] = sum(r["train_seconds"] + r.get("compile_seconds", 0.0) for r in history)
        self.seconds["validation"] = sum(r["epoch_seconds"] - r["train_seconds"] - r.get("compile_seconds", 0.0)
                                         for r in history)
        self.seconds["checkpoints"] = total - self.seconds["training"] - self.seconds["validation"]

    def summary(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())


def train(config: TrainConfig = None, on_epoch=None, **overrides) -> dict:
    """Train a model; returns {run_dir, checkpoint, history, best_val, test_metrics, parameters, classes,
    precision, provenance}.

    Call as `train(model="model_2", train_path="train-small", epochs=3)`, `train(recipe="fast")` or with a
    TrainConfig. `on_epoch(row, model)`, if given, is called after each epoch with its history row and the
    model that is validated (benchmarks use it to chart accuracy against time; it must not train the model).
    """
    started = time.perf_counter()  # a --budget-minutes budget counts from here
    config = make_config(**overrides) if config is None else dataclasses.replace(config, **overrides)
    device = distributed.setup(select_device(config.device))  # joins the process group under torchrun
    main = distributed.is_main()  # only rank 0 prints and writes files

    def log(msg):  # progress and logs on stderr, results on stdout
        if main:
            print(msg, file=sys.stderr)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    clock = Stopwatch()
    with clock("data"):
        data = load_training_data(config, device, verbose=main)
    if config.tune_threshold and len(data.classes) != 2:
        raise DataError(f"--tune-threshold chooses a cut on P(positive), which needs two classes; "
                        f"{data.root} has {len(data.classes)} ({', '.join(data.classes)}): drop the flag "
                        "(with more classes the verdict is the most probable class)")
    run_dir = Path(distributed.broadcast_object(str(config.out) if config.out else RUNS_DIR / (
        f"{config.model}-{Path(str(config.train_path)).name}-{time.strftime('%Y%m%d-%H%M%S')}")))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    with clock("set-up"):  # the model, the precision probe, a budget's plan
        trainer = Trainer(config, data, device, run_dir, log)
        trainer.prepare(started)
    with clock("epochs"):
        trainer.fit(on_epoch)
    clock.split_epochs(trainer.history[trainer.resumed_epochs:])  # a resumed run's earlier epochs are not its time
    model, ck = calibrated_best(trainer, clock)
    with clock("test report"):
        test_metrics = report_test(trainer.config, model, ck, device, run_dir, log)
    warnings = run_warnings(trainer, ck)
    for line in warnings:
        log(f"WARNING: {line}")
    log(f"where the time went: {clock.summary()}")
    if main:
        trainer.write_history(stage_seconds=clock.seconds, warnings=warnings)
        print(f"run folder: {run_dir}  (checkpoint: {trainer.best_path})")
    return {"run_dir": str(run_dir), "checkpoint": str(trainer.best_path), "history": trainer.history,
            "best_val": trainer.best, "parameters": trainer.parameters, "classes": data.classes,
            "precision": trainer.precision, "provenance": trainer.provenance, "test_metrics": test_metrics,
            "stage_seconds": clock.seconds, "warnings": warnings}


def run_warnings(trainer, ck) -> list:
    """utils.training.diagnosis's findings on the best checkpoint's validation scores (none when they are not
    at hand: a best epoch from before a --resume)."""
    if trainer.best_val_logits is None or not trainer.history:
        return []
    probs = probabilities(trainer.best_val_logits.float() / ck["temperature"]).cpu().numpy()  # as the cut was tuned
    return diagnose(max(r["train_accuracy"] for r in trainer.history), trainer.data.val_labels, probs,
                    ck.get("threshold"))


def calibrated_best(trainer, clock=None):
    """-> (model, checkpoint dict) of the best epoch, from memory on every rank, with the temperature (and
    threshold) fitted on validation and the outside-what-I-know statistics; rank 0 writes it over the run's
    checkpoint.pt."""
    config, clock = trainer.config, clock or Stopwatch()
    ck = trainer.checkpoint(trainer.averaged, trainer.best_state)
    ck["epoch"] = trainer.best["epoch"]
    if config.calibrate or config.tune_threshold:
        with clock("calibration"):
            val_logits = trainer.best_val_logits  # unknown when the best epoch came before a --resume
            if val_logits is None:
                val_logits = run_model(model_from_checkpoint(ck, trainer.device), trainer.data.val_images,
                                       device=trainer.device)
            calibrate(ck, val_logits, trainer.data.val_labels, config, trainer.log)
    model = model_from_checkpoint(ck, trainer.device)
    # the "outside what I know" score: fitted on training images, its cut on the validation part
    with clock("outside fit"):
        ck["outside"] = fit_for_run(model, trainer.data.train_images, trainer.data.train_labels,
                                    trainer.data.val_images, trainer.data.val_labels, ck["config"],
                                    trainer.data.classes, val_masks=trainer.data.val_masks)
    trainer.log(f"outside-what-I-know cut {ck['outside']['threshold']:.3g} (the {ck['outside']['quantile']:.1%} "
                f"quantile of {ck['outside']['heldout_images']} validation images)")
    if trainer.main:
        with clock("checkpoints"):
            save_checkpoint(ck, trainer.best_path)
    return model, ck


def report_test(config, model, ck, device, run_dir, log):
    """The test metrics of the best checkpoint on the test split asked for, or the one paired with a shipped
    training split; None (and why, said once) when there is none."""
    paired = config.test_path is None
    test_path = default_test_path(config.train_path) if paired else config.test_path
    if not test_path or str(test_path).lower() == "none":
        if paired:
            log(f"no test report: {config.train_path} is not a shipped training split, so no test split is paired "
                "with it (--test-path SPLIT names one)")
        return None
    log(f"test report on {test_path}" + (f" (the split paired with {config.train_path})" if paired else ""))
    try:
        with distributed.main_first():  # rank 0 builds the cache, the others memory-map it
            test_dir = resolve_split(test_path)
            load_folder(test_dir, verbose=False, image_size=config.image_size, resize=config.resize)
    except DataError as e:
        log(f"no test report: {e}")
        return None
    metrics = evaluate((model, ck), test_dir, device=str(device), verbose=distributed.is_main())
    if distributed.is_main():
        (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"test metrics of the best-on-validation checkpoint (epoch {ck['epoch']}) on {test_dir}:")
        print(format_metrics(metrics))
    return metrics

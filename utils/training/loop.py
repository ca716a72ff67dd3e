"""The epoch loop of a training run: the `Trainer` holds the model, its moving average, optimizer and
schedule, trains and validates one epoch at a time, keeps the best-on-validation weights in memory and writes
the run folder's checkpoints (rank 0 only)."""
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data import Batches, DataError
from data.degradations import opt_in_kinds
from data.synthetic_edits import edit_classes_from, kinds_from
from models import ImageClassifier, build_model, count_parameters, edit_map_loss, loss_function, probabilities
from models.whitening import whiten_first_conv
from utils import distributed
from utils.inference.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint, start_from
from utils.inference.metrics import classification_metrics, edit_map_metrics
from utils.inference.scoring import run_with_map
from utils.inference.verdict import decide
from utils.training.batchnorm import remeasure_batchnorm, statistics_images
from utils.training.budget import plan_epochs, replan_epochs
from utils.training.optimization import make_optimizer, make_scheduler, update_ema
from utils.training.precision import choose_precision, precision_name
from utils.training.provenance import provenance
from utils.training.training_data import TrainingData


def validate(model, images, labels, classes, loss_fn, device, masks=None):
    """-> (metrics, logits): the logits are kept for calibrating the best epoch without scoring it again.
    A model with an edit map is also scored on the validation images' edit `masks` (pixel_f1, pixel_iou,
    false_map_rate)."""
    y = torch.as_tensor(np.asarray(labels))
    logits, maps = run_with_map(model, images, device=device)
    pixels = {} if maps is None else edit_map_metrics(maps.numpy(), masks.numpy())
    metrics = classification_metrics(y.numpy(), probabilities(logits).numpy(), classes)
    metrics["loss"] = float(loss_fn(logits, y))
    metrics.update({k: pixels[k] for k in ("pixel_f1", "pixel_iou", "false_map_rate") if k in pixels})
    return metrics, logits


def _state_copy(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class Trainer:
    """`model` is trained, `averaged` (its moving average, or the model itself) is validated and saved; with
    torchrun `forward` is the DistributedDataParallel wrapper of `model` (and with --compile, compiled)."""

    def __init__(self, config, data: TrainingData, device, run_dir: Path, log):
        self.config, self.data, self.device, self.log = config, data, device, log
        self.main, self.world = distributed.is_main(), distributed.world_size()
        self.best_path, self.last_path = run_dir / "checkpoint.pt", run_dir / "last.pt"
        self.run_dir = run_dir
        classes = data.classes
        model = ImageClassifier(build_model(config.model, len(classes)), data.mean, data.std).to(device)
        model.tta = config.tta
        if config.init_from:  # a fine-tune; either way a resumed run then loads its own weights over these
            log(start_from(model, config.init_from, config.model, classes))
        elif config.whiten:
            log(whiten_first_conv(model, data.train_images, seed=config.seed))
        self.parameters = count_parameters(model)
        log(f"model {config.model}: {self.parameters:,} parameters; classes {classes} "
            + (f"(P({classes[1]}) is the output, {classes[0]} is negative)" if len(classes) == 2 else "(softmax)"))
        log(f"train {len(data.train_labels)} / validation {len(data.val_labels)} images; device {device}; "
            f"run folder {run_dir}")
        if self.world > 1:
            if config.sync_bn:
                if device.type != "cuda":
                    raise DataError("--sync-bn needs CUDA (NCCL); on the CPU each rank keeps its own BatchNorm "
                                    "statistics")
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            log(f"DistributedDataParallel over {self.world} processes ({'NCCL' if device.type == 'cuda' else 'gloo'}), "
                f"{config.batch_size} images a step on each")
        self.model = model
        self.forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None) if self.world > 1 else model
        if config.compile:
            self.forward = torch.compile(self.forward)  # compiled at the first step, timed apart
        if distributed.rank() > 0:  # the same weights everywhere (DDP broadcast them), but not the same dropout
            torch.manual_seed(config.seed + 1000 * distributed.rank())
        self.batches = Batches(data.train_images, data.train_labels, config.batch_size, shuffle=True,
                               seed=config.seed, hflip=config.hflip, vflip=config.vflip,
                               crop_padding=config.crop_padding, window=config.train_crop,
                               sharpness=config.sharpness, robust=config.robust,
                               device=device, rank=distributed.rank(), world_size=self.world,
                               synthetic_edits=config.synthetic_edits, classes=classes,
                               edit_kinds=kinds_from(config.edit_kinds), masks=data.train_masks,
                               with_masks=model.has_edit_map, edit_classes=edit_classes_from(config.edit_classes),
                               robust_extra=opt_in_kinds(config.robust_extra))
        self.optimizer = make_optimizer(model, config, device)
        counts = np.bincount(data.train_labels, minlength=len(classes)) if config.balance else None
        self.loss_fn = loss_function(len(classes), counts, config.label_smoothing)
        self.history, self.best, self.epoch = [], None, 0
        self.resumed_epochs = 0  # epochs a --resume found done
        self.best_state = self.best_val_logits = None  # the best epoch's weights and validation logits
        self.statistics_images = None  # what BatchNorm's statistics are measured on after each epoch

    def prepare(self, started):
        """Precision, then the epoch plan of a budgeted run, the schedule, and a resumed run's state."""
        config, data = self.config, self.data
        window = config.train_crop or config.image_size  # the probe is timed at the size the steps will see
        probe = (torch.as_tensor(data.train_images[:config.batch_size])[..., :window, :window].to(self.device),
                 torch.as_tensor(data.train_labels[:config.batch_size]).to(self.device))
        # a resumed run keeps its precision: measuring again on a busier CPU could pick the other one
        recorded = self._recorded_precision() if config.resume and config.precision == "auto" else None
        chosen = dataclasses.replace(config, precision=recorded) if recorded else config
        self.autocast, self.scaler = choose_precision(chosen, self.device, self.model, self.loss_fn, probe, self.log)
        self.precision = precision_name(self.autocast)
        self.provenance = provenance(self.device, self.precision, data)
        if config.budget_minutes and not config.resume:  # a resumed run keeps the epochs its first part planned
            self._set_epochs(plan_epochs(config, self.batches, self.model, self.loss_fn, probe, data.val_images,
                                         self.autocast, self.device, self.log), steps_done=None)
        self.scheduler = make_scheduler(self.optimizer, self.config, len(self.batches))
        self.averaged = copy.deepcopy(self.model) if config.ema else self.model
        if config.resume:
            self._resume()
        self.started = started

    def _set_epochs(self, epochs, steps_done):
        self.config = dataclasses.replace(self.config, epochs=epochs)
        if steps_done is not None:
            self.scheduler = make_scheduler(self.optimizer, self.config, len(self.batches), steps_done)

    def _recorded_precision(self):
        """The CPU precision (fp32 or bf16) in last.pt's provenance, or None (no last.pt, or not on a CPU)."""
        recorded = None
        if self.main and self.last_path.exists():
            recorded = (load_checkpoint(self.last_path).get("provenance") or {}).get("precision")
        return distributed.broadcast_object(recorded if self.device.type == "cpu" else None)

    def _resume(self):
        """Rank 0 reads last.pt and the best checkpoint, every rank gets them by broadcast (ranks on other
        nodes need not see rank 0's files)."""
        states = None
        if self.main and self.last_path.exists():
            states = (load_checkpoint(self.last_path), load_checkpoint(self.best_path))
        states = distributed.broadcast_object(states)
        if states is None:  # on every rank, so that none waits for the others
            raise DataError(f"{self.last_path}: nothing to resume (no last.pt in {self.run_dir})")
        state, best_ck = states
        if state["model_name"] != self.config.model or state["classes"] != self.data.classes:
            raise DataError(f"{self.last_path}: cannot resume: it is {state['model_name']} on {state['classes']}")
        view = (state.get("image_size") or 32, state.get("resize") or "shrink")
        if view != (self.config.image_size, self.config.resize):
            raise DataError(f"{self.last_path}: cannot resume: it trained on {view[1]} views of {view[0]} px, this "
                            f"run asks for {self.config.resize} at {self.config.image_size} (--resize {view[1]} "
                            "resumes it)")
        if self.config.budget_minutes:
            self.config = dataclasses.replace(self.config, epochs=state["config"]["epochs"])
        self.model.load_state_dict(state["state_dict"])
        if self.config.ema:
            self.averaged.load_state_dict(state.get("ema_state_dict", state["state_dict"]))
        self.optimizer.load_state_dict(state["optimizer"])
        # rebuilt for the requested epochs over the loaded optimizer and fast-forwarded, so a run can also be
        # extended (even past a first run too short to have had a schedule)
        steps = len(self.batches)
        self.scheduler = make_scheduler(self.optimizer, self.config, steps, state["epoch"] * steps)
        torch.set_rng_state(state["rng"])
        self.history, self.best, self.epoch = state["history"], state["best"], state["epoch"]
        self.resumed_epochs = len(self.history)
        self.best_state = best_ck["state_dict"]
        self.batches.epoch = self.epoch
        self.log(f"resumed from {self.last_path} after epoch {self.epoch}")

    def fit(self, on_epoch=None):
        """Train and validate epoch after epoch; a budgeted run re-plans its epochs after the first."""
        callback_seconds = 0.0  # spent in on_epoch (a benchmark's own scoring): not the run's time
        start_epoch = self.epoch
        while self.epoch < self.config.epochs:
            t0 = time.perf_counter()
            row, val, val_logits = self.run_epoch(compile_step=self.config.compile and self.epoch == start_epoch)
            self.history.append(row)
            if on_epoch is not None:
                t_callback = time.perf_counter()
                on_epoch(row, self.averaged)
                callback_seconds += time.perf_counter() - t_callback
            improved = self.best is None or self.selection_key(val) > self.selection_key(self.best)
            self.log(f"epoch {self.epoch + 1}/{self.config.epochs}: train loss {row['train_loss']:.4f} acc "
                     f"{row['train_accuracy']:.4f} | val loss {val['loss']:.4f} acc {val['accuracy']:.4f} auc "
                     f"{val['roc_auc'] or float('nan'):.4f}"
                     + (f" pixel F1 {val['pixel_f1'] or 0:.3f} false maps {val['false_map_rate'] or 0:.3f}"
                        if "pixel_f1" in val else "")
                     + f" | {row['train_images_per_s']:.0f} img/s, "
                     f"{row['epoch_seconds']:.1f}s" + (" *best" if improved else ""))
            if improved:
                self.best_val_logits, self.best_state = val_logits, _state_copy(self.averaged)
                self.best = {k: val[k] for k in ("accuracy", "balanced_accuracy", "roc_auc", "loss", "f1", "n",
                                                 "pixel_f1", "false_map_rate") if k in val}
                self.best["epoch"] = self.epoch + 1
            self.epoch += 1
            if self.config.budget_minutes and self.epoch == 1:  # the probe's plan, corrected by a measured epoch
                now = time.perf_counter()
                used, took = now - self.started - callback_seconds, now - t0 - callback_seconds
                planned = distributed.broadcast_object(replan_epochs(60 * self.config.budget_minutes, used, took))
                if planned != self.config.epochs:
                    self._set_epochs(planned, steps_done=len(self.batches))
                self.log(f"time budget re-planned after epoch 1: {planned} epochs (it took {took:.1f} s; "
                         f"{used:.1f} s of {60 * self.config.budget_minutes:g} used)")
            if self.main:
                self.save(improved)

    def run_epoch(self, compile_step=False):
        """One pass over the training part, then validation of `averaged` -> (history row, metrics, logits)."""
        config, batches = self.config, self.batches
        self.model.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        show_bars = config.progress and (sys.stderr.isatty() or "ipykernel" in sys.modules)
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{config.epochs}", unit="batch", file=sys.stderr,
                   disable=not show_bars, leave=False)
        compile_seconds = 0.0
        step_lr = self.optimizer.param_groups[0]["lr"]
        for step, (x, y, *masks) in enumerate(bar, start=self.epoch * len(batches)):
            compiling = compile_step and step == self.epoch * len(batches)
            t_step = time.perf_counter()
            with self.autocast:
                if masks:  # a network with an edit map: its mask loss is added, on every image
                    logits, edit_map = self.forward(x, with_map=True)
                    loss = self.loss_fn(logits.float(), y) + edit_map_loss(edit_map, masks[0])
                else:
                    logits = self.forward(x)
                    loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            step_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses; the scheduler moves it after
            if self.scaler is not None and self.scaler.is_enabled():
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            if self.scheduler:
                self.scheduler.step()
            if config.ema:
                update_ema(self.averaged, self.model, config.ema, step)
            if compiling:  # this process's first step compiled the graph
                compile_seconds = time.perf_counter() - t_step
                self.log(f"torch.compile: first step took {compile_seconds:.1f} s (compilation), not counted as "
                         "training")
            with torch.no_grad():
                correct += int((decide(probabilities(logits)) == y).sum())
                seen += len(y)
                loss_sum += float(loss) * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        train_seconds = time.perf_counter() - t0 - compile_seconds
        loss_sum, correct, seen = distributed.sum_across([loss_sum, correct, seen], self.device)
        # the statistics of the weights validated (every rank measures the same sample), then rank 0's for all
        if self.statistics_images is None:
            self.statistics_images = statistics_images(self.data.train_images, self.data.train_labels,
                                                       dataclasses.asdict(self.config), self.data.classes)
        remeasure_batchnorm(self.averaged, self.statistics_images, self.device, self.averaged.has_edit_map)
        distributed.broadcast_buffers(self.averaged)
        val, val_logits = validate(self.averaged, self.data.val_images, self.data.val_labels, self.data.classes,
                                   self.loss_fn, self.device, self.data.val_masks)
        row = {"epoch": self.epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val["loss"], "val_accuracy": val["accuracy"],
               "val_balanced_accuracy": val["balanced_accuracy"], "val_roc_auc": val["roc_auc"],
               "lr": step_lr, "train_images": int(seen), "train_seconds": train_seconds,
               "compile_seconds": compile_seconds, "train_images_per_s": seen / train_seconds,
               "epoch_seconds": time.perf_counter() - t0}
        row.update({f"val_{k}": val[k] for k in ("pixel_f1", "pixel_iou", "false_map_rate") if k in val})
        return row, val, val_logits

    def selection_key(self, metrics):
        """What makes an epoch the best on validation: accuracy, ties to the lower loss. An edit localiser (edits
        drawn on FAKE images too) is used for its map alone, and its class head mixes edited fakes into EDITED,
        so its epochs are compared by the map's pixel F1 (a best without one counts as the worst)."""
        if "FAKE" in edit_classes_from(self.config.edit_classes) and self.model.has_edit_map:
            return (metrics.get("pixel_f1") or float("-inf"), -metrics["loss"])
        return (metrics["accuracy"], -metrics["loss"])

    def checkpoint(self, model, state_dict=None) -> dict:
        """The checkpoint dict of `model` (with `state_dict` loaded, if given) at the current epoch."""
        ck = make_checkpoint(model, self.config.model, self.data.classes, self.config.image_size,
                             dataclasses.asdict(self.config), self.best, self.epoch, self.provenance,
                             self.config.resize)
        if state_dict is not None:
            ck["state_dict"] = state_dict
        return ck

    def save(self, improved):
        """Rank 0: the best checkpoint when it improved, last.pt (for --resume) and history.json."""
        if improved:
            save_checkpoint(self.checkpoint(self.averaged), self.best_path)
        state = self.checkpoint(self.model)
        state.update(optimizer=self.optimizer.state_dict(), rng=torch.get_rng_state(), history=self.history,
                     best=self.best)
        if self.config.ema:
            state["ema_state_dict"] = _state_copy(self.averaged)
        save_checkpoint(state, self.last_path)
        self.write_history()

    def write_history(self, **extra):
        (self.run_dir / "history.json").write_text(json.dumps(
            {"config": dataclasses.asdict(self.config), "classes": self.data.classes, "parameters": self.parameters,
             "precision": self.precision, "provenance": self.provenance, "history": self.history, **extra,
             "best_val": self.best}, indent=2))

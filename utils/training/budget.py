"""Planning the epochs of a run with a wall-time budget (`--budget-minutes`): a plan from a few measured
training steps and a timed validation slice before training, corrected after the first whole epoch."""
import time

import torch

from utils import distributed
from utils.inference.scoring import eval_batch_size, run_model
from utils.training.precision import step_seconds


def epochs_for_budget(budget_seconds, steps_per_epoch, step_seconds, val_seconds, margin=0.85) -> int:
    """The number of epochs (at least 1) whose training steps and validations fit in `margin` of the budget.
    The margin covers what a probe step does not see: batch gathering, the EMA update, and the CPU's speed
    drifting (67-91 ms a step for the same fullres_cnn_x2 step over one hour on the AMX machine)."""
    return max(1, int(margin * budget_seconds // (steps_per_epoch * step_seconds + val_seconds)))


def replan_epochs(budget_seconds, used_seconds, epoch_seconds, margin=0.92) -> int:
    """After the first epoch of a budgeted run: 1 + the epochs of the measured length that fit in what is left
    of `margin` of the budget. The first epoch's wall time includes everything the probe missed (batch
    gathering, the EMA, checkpoints), so the margin only has to cover the CPU's speed drifting."""
    return 1 + max(0, int((margin * budget_seconds - used_seconds) // max(epoch_seconds, 1e-9)))


def plan_epochs(config, batches, model, loss_fn, probe, val_images, autocast, device, log) -> int:
    """Epochs that fit `config.budget_minutes` of wall time on this machine, from a few measured training
    steps, the batch augmentation (robust training's JPEG round trips are a sixth of a step) and a timed
    slice of the validation images; rank 0's answer holds for every rank."""
    seconds = step_seconds(model, loss_fn, *probe, autocast)
    if batches.augments:
        gen = torch.Generator().manual_seed(config.seed)
        t0 = time.perf_counter()
        for _ in range(3):
            batches.augment(probe[0], gen)
        seconds += (time.perf_counter() - t0) / 3
    sample = val_images[:4 * eval_batch_size(device)]
    t0 = time.perf_counter()
    run_model(model, sample, device=device)
    # run_model scores this rank's share of the sample, as validation will of the whole set
    val_seconds = (time.perf_counter() - t0) * len(val_images) / max(len(sample), 1)
    epochs = distributed.broadcast_object(
        epochs_for_budget(60 * config.budget_minutes, len(batches), seconds, val_seconds))
    log(f"time budget {config.budget_minutes:g} min: {epochs} epochs (measured {seconds * 1e3:.0f} ms a step, "
        f"{len(batches)} steps an epoch, {val_seconds:.1f} s to validate)")
    return epochs

"""The checkpoint: one `.pt` file holding weights, model name, classes, image size, normalisation, the
training config and validation metrics. Loaded with `weights_only=True`, so a checkpoint can never run code.

One way in: `load_classifier` (a path or an already loaded pair -> (model, checkpoint dict)), which reads a file
through `load_checkpoint`, which brings a checkpoint of an older format up to this one (`upgrade_checkpoint`), so
every reader sees the current keys. One way out: `save_checkpoint` (data.cache.atomic_write). The shipped
detectors live at `weights_path(name)`.
"""
import copy
import pickle
from pathlib import Path

import torch

from data.cache import atomic_write
from models import ImageClassifier, build_model
from utils.cli import UserError

FORMAT = "ai-image-classifier/checkpoint"
VERSION = 2
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"  # the shipped detectors (shipping/detectors.py)
DEFAULT_DETECTOR = "two_part_edits"  # the one used when no model is named (predict.py, the demo, the web page)


class CheckpointError(UserError):
    """The file is missing, not a checkpoint, or unsafe; the message says which."""


# the training settings a version 1 checkpoint may lack, with the value its run had in effect
V1_CONFIG_DEFAULTS = {"synthetic_edits": 0.0, "edit_kinds": None, "edit_classes": None, "robust": 0.0,
                      "robust_extra": "", "max_train_images": 0, "max_val_images": 0, "hflip": False,
                      "vflip": False, "seed": 0, "calibrate": True, "outside_fit_images": 20000,
                      "edits_label_neutral": False, "own_edits_repeat": 1}


def make_checkpoint(model: ImageClassifier, model_name, classes, image_size, config, val_metrics, epoch,
                    provenance=None, resize="shrink") -> dict:
    return {
        "format": FORMAT, "version": VERSION, "model_name": model_name, "classes": list(classes),
        "positive_class": classes[1] if len(classes) == 2 else None, "image_size": image_size, "resize": resize,
        "normalization": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": {**V1_CONFIG_DEFAULTS, **config}, "val_metrics": val_metrics, "epoch": epoch,
        "temperature": float(model.temperature), "tta": model.tta, "provenance": provenance,
    }


def image_view(ck: dict) -> tuple:
    """-> (image size, resize mode) a checkpoint's model sees images at (data/images.py)."""
    return int(ck["image_size"]), ck["resize"]


def upgrade_checkpoint(ck: dict) -> dict:
    """A checkpoint dict of any earlier version -> the same checkpoint in this VERSION's format (a new dict).

    Version 1 (and unversioned) checkpoints may lack: `image_size` and `resize` (they shrank every image to
    32x32), `tta` (a boolean `flip_tta` instead, or nothing: none), `temperature` (1: none), and the training
    settings of V1_CONFIG_DEFAULTS in `config`. Version 2 has every one of them."""
    ck = dict(ck)
    if ck.get("version", 0) < 2:
        ck["image_size"] = int(ck.get("image_size") or 32)
        ck["resize"] = ck.get("resize") or "shrink"
        ck["tta"] = ck.get("tta") or ("flip" if ck.pop("flip_tta", False) else "none")
        ck["temperature"] = float(ck.get("temperature", 1.0))
        ck["config"] = {**V1_CONFIG_DEFAULTS, **(ck.get("config") or {})}
        ck["version"] = 2
    return ck


def save_checkpoint(checkpoint: dict, path):
    """Write a checkpoint dict; a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: refused: not a plain-weights checkpoint, it would need to run code "
                              f"to load ({first})") from None
    except Exception as e:  # a foreign file can fail anywhere inside torch's reader
        raise CheckpointError(f"{path}: not a checkpoint file ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a torch file, but not an ai-image-classifier checkpoint "
                              "(train.py writes those)")
    if ck.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ck['version']} is newer than this code ({VERSION})")
    return upgrade_checkpoint(ck)


def model_from_checkpoint(ck: dict, device="cpu", source="checkpoint") -> ImageClassifier:
    """The model a checkpoint dict describes; a dict that does not describe one is a CheckpointError naming
    `source` (an unknown model name, missing keys, weights that do not fit the model)."""
    try:
        net = build_model(ck["model_name"], len(ck["classes"]))
        norm = ck["normalization"]
        model = ImageClassifier(net, norm["mean"], norm["std"])
        model.load_state_dict(ck["state_dict"])
        model.temperature.fill_(float(ck["temperature"]))
        model.tta = ck["tta"]
    except KeyError as e:
        raise CheckpointError(f"{source}: incomplete checkpoint: no {e} entry") from None
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{source}: its weights do not make a model here ({first[:300]})") from None
    return model.to(device).eval()


def weights_path(name=DEFAULT_DETECTOR, weights_dir=WEIGHTS_DIR) -> Path:
    """Where shipped detector `name`'s checkpoint is (its ONNX export and card sit beside it)."""
    return Path(weights_dir) / f"{name}.pt"


def default_detector() -> Path:
    """The shipped detector used when no model is named (predict.py, the demo, the web page)."""
    path = weights_path()
    if not path.is_file():
        raise CheckpointError(f"{path}: the shipped detector is missing; `make weights` retrains it, or name a "
                              "model with --checkpoint")
    return path


def load_classifier(checkpoint, device="cpu"):
    """A checkpoint path, or an already loaded (model, checkpoint dict) pair -> (model in eval mode on `device`,
    checkpoint dict). A loaded model is never moved: on another device, a copy is."""
    if isinstance(checkpoint, (str, Path)):
        ck = load_checkpoint(checkpoint)
        return model_from_checkpoint(ck, device, source=checkpoint), ck
    model, ck = checkpoint
    where, asked = next(model.parameters()).device, torch.device(device)
    if where.type != asked.type or (asked.index is not None and where.index != asked.index):
        model = copy.deepcopy(model).to(device)
    return model, ck


def localiser_of(joined: dict) -> dict:
    """A joined checkpoint -> its localiser as a checkpoint of its own (the weights, its normalisation: recorded,
    or recovered from the joined re-normalisation, and its run's settings)."""
    part = joined["parts"]["localiser"]
    state = {k: v.float() for k, v in joined["state_dict"].items()}
    norm = part.get("normalization")
    if norm is None:  # x_localiser = x * scale + shift, with scale = std / localiser_std
        mean, std = (torch.tensor(joined["normalization"][k]) for k in ("mean", "std"))
        scale, shift = state["net.localiser_scale"].view(-1), state["net.localiser_shift"].view(-1)
        norm = {"mean": (mean - shift * std / scale).tolist(), "std": (std / scale).tolist()}
    prefix = "net.localiser."
    return {**{k: joined[k] for k in ("format", "version", "image_size", "resize") if k in joined},
            **part, "normalization": norm, "positive_class": None, "config": {**V1_CONFIG_DEFAULTS, **part["config"]},
            "state_dict": {"mean": torch.tensor(norm["mean"]).view(1, -1, 1, 1),
                           "std": torch.tensor(norm["std"]).view(1, -1, 1, 1),
                           **{"net." + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}}}


def start_from(model: ImageClassifier, path, model_name, classes) -> str:
    """Load a trained checkpoint's weights and normalisation into a new run's `model` (a fine-tune), after
    checking that it is the same network over the same classes (a two-part detector: its localiser, for a run
    of the localiser's network). -> what was loaded, for the log."""
    ck = load_checkpoint(path)
    if ck["model_name"] == "two_part" and model_name != "two_part":
        ck = localiser_of(ck)
    if ck["model_name"] != model_name or list(ck["classes"]) != list(classes):
        raise CheckpointError(f"{path}: cannot start from it: it is {ck['model_name']} on {ck['classes']}, this run "
                              f"trains {model_name} on {list(classes)}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()})
    return f"started from {path} ({ck['model_name']}, {ck.get('epoch')} epochs, its normalisation kept)"

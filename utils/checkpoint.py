"""The checkpoint: one `.pt` file holding weights, model name, classes, image size, normalisation, the
training config and validation metrics. Loaded with `weights_only=True`, so a checkpoint can never run code."""
import pickle
from pathlib import Path

import torch

from models import ImageClassifier, build_model
from utils.cli import UserError

FORMAT = "ai-image-classifier/checkpoint"
VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # the shipped detectors (utils/shipping.py)
DEFAULT_DETECTOR = "two_part"  # the one used when no model is named (predict.py, the demo, the web page)


class CheckpointError(UserError):
    """The file is missing, not a checkpoint, or unsafe; the message says which."""


def make_checkpoint(model: ImageClassifier, model_name, classes, image_size, config, val_metrics, epoch,
                    provenance=None, resize="shrink") -> dict:
    return {
        "format": FORMAT, "version": VERSION, "model_name": model_name, "classes": list(classes),
        "positive_class": classes[1] if len(classes) == 2 else None, "image_size": image_size, "resize": resize,
        "normalization": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config, "val_metrics": val_metrics, "epoch": epoch,
        "temperature": float(model.temperature), "tta": model.tta, "provenance": provenance,
    }


def image_view(ck: dict) -> tuple:
    """-> (image size, resize mode) a checkpoint's model sees images at (data/images.py); checkpoints from before
    the resize mode shrank every image to 32x32."""
    return int(ck.get("image_size") or 32), ck.get("resize") or "shrink"


def save_checkpoint(checkpoint: dict, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)  # never a half-written checkpoint


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
    return ck


def model_from_checkpoint(ck: dict, device="cpu", source="checkpoint") -> ImageClassifier:
    """The model a checkpoint dict describes; a dict that does not describe one is a CheckpointError naming
    `source` (an unknown model name, missing keys, weights that do not fit the model)."""
    try:
        net = build_model(ck["model_name"], len(ck["classes"]))
        norm = ck["normalization"]
        model = ImageClassifier(net, norm["mean"], norm["std"])
        model.load_state_dict(ck["state_dict"])
        model.temperature.fill_(float(ck.get("temperature", 1.0)))
        model.tta = ck.get("tta") or ("flip" if ck.get("flip_tta") else "none")  # flip_tta: before TTA modes
    except KeyError as e:
        raise CheckpointError(f"{source}: incomplete checkpoint: no {e} entry") from None
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{source}: its weights do not make a model here ({first[:300]})") from None
    return model.to(device).eval()


def default_detector() -> Path:
    """The shipped detector used when no model is named (predict.py, the demo, the web page)."""
    path = WEIGHTS_DIR / f"{DEFAULT_DETECTOR}.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: the shipped detector is missing; `make weights` retrains it, or name a "
                              "model with --checkpoint")
    return path


def load_classifier(path, device="cpu"):
    """-> (model in eval mode on `device`, checkpoint dict)."""
    ck = load_checkpoint(path)
    return model_from_checkpoint(ck, device, source=path), ck

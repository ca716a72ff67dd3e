"""What made a checkpoint: the code (git commit, and whether the tree had uncommitted changes), the library
versions, the device and precision, and signatures of the exact training and validation images. Stored in
every checkpoint and history.json and echoed by evaluate.py, so a results row can be traced to code."""
import hashlib
import importlib.metadata
import platform
import subprocess

import numpy as np
import torch

from data.sources import REPO_ROOT
from utils.training.precision import cpu_name


def _git(*args):
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict:
    commit = _git("rev-parse", "HEAD")
    dirty = None if commit is None else bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {"git_commit": commit, "git_dirty": dirty}


def data_signature(images, labels, classes) -> str:
    """sha1 of the decoded pixels, labels and class names: the same images give the same signature on any
    machine, whatever their files' dates; one changed pixel changes it."""
    h = hashlib.sha1(repr(list(classes)).encode())
    h.update(np.ascontiguousarray(np.asarray(labels, dtype=np.int64)).tobytes())
    for start in range(0, len(images), 4096):  # a chunk at a time: a split on disk is never read whole
        part = images[start:start + 4096]
        h.update(np.ascontiguousarray(part.cpu().numpy() if isinstance(part, torch.Tensor) else part).tobytes())
    return h.hexdigest()[:16]


def provenance(device, precision, data) -> dict:
    """`data`: the run's TrainingData (utils.training.loop)."""
    return {**code_version(), "torch": str(torch.__version__), "torchvision": importlib.metadata.version("torchvision"),
            "python": platform.python_version(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
            "precision": precision, "train_data": str(data.root),
            "train_signature": data_signature(data.train_images, data.train_labels, data.classes),
            "val_signature": data_signature(data.val_images.numpy(), data.val_labels, data.classes),
            "train_images": len(data.train_labels), "val_images": len(data.val_labels)}


def describe(prov) -> str:
    """One line for a metrics table."""
    if not prov:
        return "no provenance recorded (a checkpoint written before it was)"
    commit = (prov.get("git_commit") or "unknown")[:10] + (" (uncommitted changes)" if prov.get("git_dirty") else "")
    return (f"commit {commit}, torch {prov.get('torch')}, {prov.get('device')} {prov.get('precision')}, "
            f"train data {prov.get('train_signature')}, validation {prov.get('val_signature')}")

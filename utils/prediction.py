"""Classifying files, whatever runs the network: which files a path names, how a verdict is reported, when it
is uncertain. Shared by the PyTorch path (`utils.inference.predict`) and the ONNX one (`utils.onnx_model`),
so both give the same lines; imports no torch."""
import os
import sys
from pathlib import Path

import numpy as np

from data.images import ImageError, load_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FILES_AT_ONCE = 256  # files read and handed to `score` together
UNCERTAIN_BELOW = 0.75  # a verdict whose calibrated probability is under this is flagged "uncertain"


def expand_paths(paths):
    """Files as given; folders recursively (sorted, hidden entries left out). Missing paths are kept so that
    they are reported, not silently dropped."""
    for p in paths:
        p = Path(p)
        if p.is_dir() and p.suffix.lower() not in IMAGE_SUFFIXES:
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        yield Path(dirpath) / name
        else:
            yield p  # a file, a missing path, or a directory named like an image: load_image says what is wrong


def predict_files(score, classes, paths, batch_size=None, progress=False):
    """Yield one dict per file, in order: {path, label, probability, probabilities, uncertain} or {path, error}.

    `score(images)` takes uint8 (N, 3, 32, 32) arrays and returns (probabilities (N, C), class indices (N,)).
    `probability` is that of the positive class for two classes, else that of the predicted class;
    `uncertain` is true when the chosen class's (calibrated) probability is below UNCERTAIN_BELOW."""
    files = list(expand_paths(paths))
    batch_size = batch_size or FILES_AT_ONCE
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(files), unit="img", file=sys.stderr, desc="predict")
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        results, arrays, slots = [], [], []
        for path in chunk:
            try:
                array, _ = load_image(path)
                slots.append(len(results))
                arrays.append(array)
                results.append({"path": str(path)})
            except ImageError as e:
                results.append({"path": str(path), "error": str(e)})
        if arrays:
            probs, decisions = score(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))
            for slot, p, k in zip(slots, np.asarray(probs), np.asarray(decisions).tolist()):
                results[slot].update(
                    label=classes[k],
                    probability=float(p[1]) if len(classes) == 2 else float(p[k]),
                    probabilities={c: float(v) for c, v in zip(classes, p)},
                    uncertain=bool(p[k] < UNCERTAIN_BELOW))
        if bar:
            bar.update(len(chunk))
        yield from results
    if bar:
        bar.close()

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
UNCERTAIN_BELOW = 0.75  # with 3+ classes, a verdict whose calibrated probability is under this is "uncertain"


def is_uncertain(probs, threshold=None) -> bool:
    """Whether a verdict is uncertain, from the decision rule that made it. Two classes, decided by
    P(positive) >= t (t = 0.5 unless one was tuned on validation): uncertain when P(positive) lies in the half
    of its side of the cut nearest to it, t/2 < P < (1 + t)/2 (at t = 0.5: the chosen class's probability under
    0.75). More classes (argmax): the chosen class's probability under UNCERTAIN_BELOW."""
    probs = np.asarray(probs)
    if len(probs) == 2:
        t = 0.5 if threshold is None else float(threshold)
        return bool(t / 2 < probs[1] < (1 + t) / 2)
    return bool(probs.max() < UNCERTAIN_BELOW)


MAP_THRESHOLD = 0.5  # a pixel of an edit map at or above this probability counts as edited


def edit_region(prob_map, threshold=MAP_THRESHOLD):
    """-> (edit_box [x, y, w, h] around the pixels of an (H, W) edit map at or above `threshold`, or None;
    edit_area: how many pixels those are). In the model's 32x32 view of the image."""
    hit = np.asarray(prob_map) >= threshold
    if not hit.any():
        return None, 0
    rows, cols = np.flatnonzero(hit.any(1)), np.flatnonzero(hit.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)], int(hit.sum())


VERDICT_CLASSES = ["REAL", "EDITED", "FAKE"]  # a two-part detector's verdicts (models/two_part.py)


def edit_scores(prob_maps, pixels) -> np.ndarray:
    """(N, H, W) edit maps in 0..1 -> (N,) edit scores: the mean of each map's `pixels` highest values less the
    map's median. A region that stands out against the rest of its own image scores high; a change of the
    whole image (a re-save, sharpening, another camera) that lifts the map everywhere lifts its median too."""
    flat = np.asarray(prob_maps, dtype=np.float32).reshape(len(prob_maps), -1)
    if flat.shape[0] == 0:
        return np.zeros(0, np.float32)
    top = np.partition(flat, flat.shape[1] - pixels, axis=1)[:, -pixels:]
    return top.mean(1) - np.median(flat, axis=1)


def verdict_indices(decisions, classes, maps=None, edit_rule=None):
    """-> (the verdicts' class names, indices into them (N,), edit scores (N,) or None). Without `edit_rule`,
    the model's own decisions. With one (a two-part detector: classes REAL, FAKE and an edit map): FAKE where
    the real-vs-fake part says so, else EDITED where the map's edit score reaches the rule's cut, else REAL."""
    decisions = np.asarray(decisions)
    if not edit_rule:
        return list(classes), decisions, None
    if maps is None:
        raise ValueError("an edit rule needs the model's edit maps")
    scores = edit_scores(maps, edit_rule["pixels"])
    fake = decisions == list(classes).index("FAKE")
    edited = scores >= edit_rule["cut"]
    return VERDICT_CLASSES, np.where(fake, 2, np.where(edited, 1, 0)), scores


def mask_path(masks_dir, path) -> Path:
    """Where the edit map of `path` goes: its path under `masks_dir` with .png added, so that files of the same
    name in different folders keep apart (an absolute path loses its root, '..' becomes '__')."""
    p = Path(path)
    parts = [("__" if part == ".." else part) for part in p.parts if part != p.anchor]
    return Path(masks_dir, *parts[:-1], parts[-1] + ".png")


def write_mask(prob_map, out: Path):
    """An (H, W) edit map in 0..1 as a greyscale PNG (0-255 = the probability that the pixel was edited)."""
    from PIL import Image
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(np.asarray(prob_map), 0, 1) * 255 + 0.5).astype(np.uint8), mode="L").save(out)


def expand_paths(paths):
    """Yield (path, reason it is skipped or None). A path named explicitly is always tried, so a wrong one gets
    its error (a missing path is reported, not dropped). In folders (recursive, sorted, hidden entries left
    out) files without an image extension (sidecars: .xmp, .txt, .json, ...) are skipped, with that reason."""
    for p in paths:
        p = Path(p)
        if p.is_dir() and p.suffix.lower() not in IMAGE_SUFFIXES:
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    path = Path(dirpath) / name
                    yield path, (None if path.suffix.lower() in IMAGE_SUFFIXES
                                 else f"not an image by its extension ({path.suffix or 'none'})")
        else:
            yield p, None  # a file, a missing path, or a directory named like an image: load_image says what is wrong


def sample_files(root, per_class, seed=0) -> list:
    """-> [(path, true class)]: `per_class` image files drawn at random (seeded) from each <CLASS>/ folder of
    `root`, in class-folder order (for a tally of right verdicts, as `make demo` prints)."""
    rng = np.random.default_rng(seed)
    drawn = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        pick = sorted(rng.choice(len(files), min(per_class, len(files)), replace=False).tolist()) if files else []
        drawn += [(files[i], folder.name.upper()) for i in pick]
    return drawn


def predict_files(score, classes, paths, batch_size=None, progress=False, threshold=None, masks_dir=None,
                  keep_arrays=False, outside=None, edit_rule=None):
    """Yield one dict per file, in order: {path, resized, label, probability, probabilities, uncertain}, {path, error}
    (it could not be read) or {path, skipped} (in a folder, not an image by its extension).

    `score(images)` takes uint8 (N, 3, 32, 32) arrays and returns (probabilities (N, C), class indices (N,)),
    and for a model with an edit map also the maps (N, 32, 32) in 0..1: then each verdict has `edit_box` and
    `edit_area` (see `edit_region`), and with `masks_dir` the map is written there as a PNG (`mask`: its path).
    `resized`: the file was not 32x32, so the model saw a shrunk centre square (docs/model-card.md says what
    verdicts on such images are worth). `probability` is that of the positive class for two classes, else that
    of the predicted class;
    `uncertain` follows `is_uncertain` with the model's decision `threshold`. `outside(images)`, where the model
    has one (utils.outside), returns (N,) scores and the cut above which an image is unlike anything the detector
    learned: each verdict then has `outside` (bool) and `outside_score` (1 at the cut); else both are None.
    With `edit_rule` (a two-part detector, see `verdict_indices`) the label is REAL, EDITED or FAKE, and each
    verdict also has `p_fake` and `edit_score` (with `edit_cut`); `edit_box` is given only for an EDITED verdict.
    With `keep_arrays`, each verdict
    also carries `view`, the (32, 32, 3) uint8 image the model saw, and `edit_map`, its (32, 32) map or None
    (for the web page, which draws them)."""
    files = list(expand_paths(paths))
    batch_size = batch_size or FILES_AT_ONCE
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(files), unit="img", file=sys.stderr, desc="predict")
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        results, arrays, slots = [], [], []
        for path, skip in chunk:
            if skip:
                results.append({"path": str(path), "skipped": skip})
                continue
            try:
                array, resized = load_image(path)
                slots.append(len(results))
                arrays.append(array)
                results.append({"path": str(path), "resized": resized})
            except ImageError as e:
                results.append({"path": str(path), "error": str(e)})
        if arrays:
            images = np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))
            probs, decisions, *maps = score(images)
            scores, cut = outside(images) if outside else (None, None)
            names, verdicts, edit = verdict_indices(decisions, classes, maps[0] if maps else None, edit_rule)
            for i, (slot, p, k) in enumerate(zip(slots, np.asarray(probs), np.asarray(decisions).tolist())):
                r = results[slot]
                r.update(label=names[verdicts[i]], probability=float(p[1]) if len(classes) == 2 else float(p[k]),
                         probabilities={c: float(v) for c, v in zip(classes, p)},
                         uncertain=is_uncertain(p, threshold),
                         outside=None if scores is None else bool(scores[i] > cut),
                         outside_score=None if scores is None else round(float(scores[i]) / cut, 4))  # 1: the cut
                if keep_arrays:
                    r.update(view=arrays[i], edit_map=maps[0][i] if maps else None)
                if edit is not None:
                    r.update(p_fake=float(p[classes.index("FAKE")]), edit_score=round(float(edit[i]), 4),
                             edit_cut=edit_rule["cut"])
                if maps:
                    r["edit_box"], r["edit_area"] = edit_region(
                        maps[0][i], MAP_THRESHOLD if edit is None else min(MAP_THRESHOLD, edit_rule["cut"]))
                    if edit is not None and r["label"] != "EDITED":
                        r["edit_box"], r["edit_area"] = None, 0  # the map decides EDITED: no verdict, no box
                    if masks_dir is not None:
                        r["mask"] = str(mask_path(masks_dir, r["path"]))
                        write_mask(maps[0][i], Path(r["mask"]))
        if bar:
            bar.update(len(chunk))
        yield from results
    if bar:
        bar.close()

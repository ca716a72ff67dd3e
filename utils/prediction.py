"""Classifying files, whatever runs the network: which files a path names, how a verdict is reported, when it
is uncertain. Shared by the PyTorch path (`utils.inference.predict`) and the ONNX one (`utils.onnx_model`),
so both give the same lines; imports no torch."""
import os
import sys
from pathlib import Path

import numpy as np

from data.images import IMAGE_SIZE, ImageError, model_view, open_rgb, tile_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FILES_AT_ONCE = 256  # files read and handed to `score` together
TILES_AT_ONCE = 256  # and at most about this many views (a large photo's tiles are scored with no other file's)
# neighbouring tiles share an eighth of a tile (32 px at 256): a tile's zero-padded border is then seen again
# from inside its neighbour, for 1.3x the tiles of no overlap (a quarter: 1.75x; bench/native_size.py --overlap)
TILE_OVERLAP = 0.125
THUMBNAIL = 1024  # a tiled image's picture and map for the page (keep_arrays): at most this many pixels a side
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


def verdict_indices(decisions, classes, maps=None, edit_rule=None, scores=None):
    """-> (the verdicts' class names, indices into them (N,), edit scores (N,) or None). Without `edit_rule`,
    the model's own decisions. With one (a two-part detector: classes REAL, FAKE and an edit map): FAKE where
    the real-vs-fake part says so, else EDITED where the map's edit score (`scores`, or `edit_scores` of the
    maps) reaches the rule's cut, else REAL."""
    decisions = np.asarray(decisions)
    if not edit_rule:
        return list(classes), decisions, None
    if scores is None and maps is None:
        raise ValueError("an edit rule needs the model's edit maps")
    scores = edit_scores(maps, edit_rule["pixels"]) if scores is None else np.asarray(scores)
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
    Image.fromarray((np.clip(np.asarray(prob_map), 0, 1) * 255 + 0.5).astype(np.uint8), mode="L").save(
        out, compress_level=1)  # a 12 MP map: 0.1 s, where the default level takes 0.45


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


def file_views(path, image_size=IMAGE_SIZE, resize="shrink"):
    """-> (uint8 views (T, 3, S, S), tile boxes in image pixels or None, the whole image (H, W, 3) when tiled
    or None, (width, height)): one view by `resize` (data.images), or, for a run at its images' own size
    ("crop") and an image larger than a view, every tile of it (data.images.tile_boxes): a large photo is scored
    whole, at its own resolution. Raises ImageError."""
    im = open_rgb(path)
    if resize == "crop" and im.size != (image_size, image_size):
        boxes = tile_boxes(*im.size, image_size, TILE_OVERLAP)
        pixels = np.asarray(im)
        views = np.stack([pixels[top:bottom, left:right] for left, top, right, bottom in boxes])
        return np.ascontiguousarray(views.transpose(0, 3, 1, 2)), boxes, pixels, im.size
    return model_view(im, image_size, resize).transpose(2, 0, 1)[None], None, None, im.size


def stitch(tile_maps, boxes, width, height) -> np.ndarray:
    """(T, S, S) maps of tiles at `boxes` -> one (height, width) map of the image, overlaps averaged."""
    total, count = np.zeros((height, width), np.float32), np.zeros((height, width), np.uint8)
    for m, (left, top, right, bottom) in zip(tile_maps, boxes):
        total[top:bottom, left:right] += m
        count[top:bottom, left:right] += 1
    total /= np.maximum(count, 1)  # in place: a 12 MP map is 48 MB
    return total


def _decide(probs, threshold=None) -> int:
    """models.decide's rule for one image's probabilities (this module imports no torch)."""
    return int(probs[1] >= threshold) if threshold is not None and len(probs) == 2 else int(np.argmax(probs))


def _thumbnail(array, side=THUMBNAIL):
    from PIL import Image
    h, w = array.shape[:2]
    if max(h, w) <= side:
        return array
    size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
    if array.ndim == 2:  # a map: 0..1 floats
        return np.asarray(Image.fromarray(array.astype(np.float32), "F").resize(size, Image.Resampling.BOX))
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BOX))


def _read_group(files, start, batch_size, image_size, resize, keep_arrays):
    """Files from `start` until `batch_size` files or TILES_AT_ONCE views -> (results, read: [(slot, views,
    boxes, thumbnail of a tiled image for the page or None, size)], next start)."""
    results, read, tiles, i = [], [], 0, start
    while i < len(files) and i - start < batch_size and (tiles < TILES_AT_ONCE or not read):
        path, skip = files[i]
        i += 1
        if skip:
            results.append({"path": str(path), "skipped": skip})
            continue
        try:
            views, boxes, picture, size = file_views(path, image_size, resize)
        except ImageError as e:
            results.append({"path": str(path), "error": str(e)})
            continue
        thumbnail = _thumbnail(picture) if keep_arrays and picture is not None else None
        read.append((len(results), views, boxes, thumbnail, size))
        results.append({"path": str(path), "resized": size != (image_size, image_size)})
        tiles += len(views)
    return results, read, i


def predict_files(score, classes, paths, batch_size=None, progress=False, threshold=None, masks_dir=None,
                  keep_arrays=False, outside=None, edit_rule=None, image_size=IMAGE_SIZE, resize="shrink"):
    """Yield one dict per file, in order: {path, resized, label, probability, probabilities, uncertain}, {path, error}
    (it could not be read) or {path, skipped} (in a folder, not an image by its extension).

    `score(images)` takes uint8 (N, 3, S, S) arrays and returns (probabilities (N, C), class indices (N,)),
    and for a model with an edit map also the maps (N, S, S) in 0..1: then each verdict has `edit_box` and
    `edit_area` (see `edit_region`), and with `masks_dir` the map is written there as a PNG (`mask`: its path).
    `resized`: the file was not S x S. A model that shrinks (`resize`, data/images.py) sees the shrunk centre
    square (docs/model-card.md says what verdicts on such images are worth), and its box is in that view. A
    model at its images' own size ("crop") scores every tile of a larger image (`file_views`) and pools them,
    each verdict then with `tiles` and `image_size` [width, height]: its probabilities are the mean of the
    tiles' (real or generated is a question about the whole image, and every tile is a sample of it: the mean
    keeps one odd tile from deciding), its edit score the largest tile's (an edit is local: one tile holds it),
    its outside score the mean; the map is stitched over the whole image (overlaps averaged), so `edit_box` and
    `mask` are in image pixels. `probability` is that of the positive class for two classes, else that
    of the predicted class;
    `uncertain` follows `is_uncertain` with the model's decision `threshold`. `outside(images)`, where the model
    has one (utils.outside), returns (N,) scores and the cut above which an image is unlike anything the detector
    learned: each verdict then has `outside` (bool) and `outside_score` (1 at the cut); else both are None.
    With `edit_rule` (a two-part detector, see `verdict_indices`) the label is REAL, EDITED or FAKE, and each
    verdict also has `p_fake` and `edit_score` (with `edit_cut`); `edit_box` is given only for an EDITED verdict.
    With `keep_arrays`, each verdict also carries `view`, the (S, S, 3) uint8 image the model saw (a tiled
    image: the whole picture, at most THUMBNAIL pixels a side), and `edit_map`, its map or None (for the web
    page, which draws them)."""
    files = list(expand_paths(paths))
    batch_size = batch_size or FILES_AT_ONCE
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(files), unit="img", file=sys.stderr, desc="predict")
    start = 0
    while start < len(files):
        results, read, end = _read_group(files, start, batch_size, image_size, resize, keep_arrays)
        if read:
            _score_group(score, classes, results, read, threshold, masks_dir, keep_arrays, outside, edit_rule)
        if bar:
            bar.update(end - start)
        start = end
        yield from results
    if bar:
        bar.close()


def _score_group(score, classes, results, read, threshold, masks_dir, keep_arrays, outside, edit_rule):
    """Score the views of `read` together and fill in each file's verdict in `results`."""
    views = np.concatenate([v for _, v, _, _, _ in read])
    tile_probs, _, *tile_maps = score(views)
    tile_maps = tile_maps[0] if tile_maps else None
    tile_outside, cut = outside(views) if outside else (None, None)
    tile_edit = None if not edit_rule else edit_scores(tile_maps, edit_rule["pixels"])
    first = 0
    for slot, file_views_, boxes, thumbnail, (width, height) in read:
        part = slice(first, first + len(file_views_))
        first += len(file_views_)
        p = np.asarray(tile_probs[part]).mean(0)
        k = _decide(p, threshold)
        edit = None if tile_edit is None else float(tile_edit[part].max())
        names, verdict, _ = verdict_indices([k], classes, None, edit_rule, None if edit is None else [edit])
        r = results[slot]
        r.update(label=names[int(verdict[0])], probability=float(p[1]) if len(classes) == 2 else float(p[k]),
                 probabilities={c: float(v) for c, v in zip(classes, p)}, uncertain=is_uncertain(p, threshold),
                 outside=None if tile_outside is None else bool(np.mean(tile_outside[part]) > cut),
                 outside_score=None if tile_outside is None else round(float(np.mean(tile_outside[part])) / cut, 4))
        edit_map = None
        if tile_maps is not None:
            edit_map = tile_maps[part][0] if boxes is None else stitch(tile_maps[part], boxes, width, height)
        if boxes is not None:
            r.update(tiles=len(boxes), image_size=[width, height])
        if keep_arrays and boxes is None:
            r.update(view=np.ascontiguousarray(file_views_[0].transpose(1, 2, 0)), edit_map=edit_map)
        elif keep_arrays:  # the page draws the stitched map over the whole picture
            r.update(view=thumbnail, edit_map=None if edit_map is None else _thumbnail(edit_map))
        if edit is not None:
            r.update(p_fake=float(p[classes.index("FAKE")]), edit_score=round(edit, 4), edit_cut=edit_rule["cut"])
        if edit_map is not None:
            r["edit_box"], r["edit_area"] = edit_region(
                edit_map, MAP_THRESHOLD if edit is None else min(MAP_THRESHOLD, edit_rule["cut"]))
            if edit is not None and r["label"] != "EDITED":
                r["edit_box"], r["edit_area"] = None, 0  # the map decides EDITED: no verdict, no box
            if masks_dir is not None:
                r["mask"] = str(mask_path(masks_dir, r["path"]))
                write_mask(edit_map, Path(r["mask"]))

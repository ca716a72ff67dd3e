"""Image files as a model sees them, whatever runs the network: which files a path names (`expand_paths`), a
file's views (one, or the tiles of a large image at its own size), a tiled map stitched back, an edit map's box
and its PNG. Imports no torch."""
import os
from pathlib import Path

import numpy as np

from data.images import IMAGE_SIZE, model_view, open_rgb, tile_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# neighbouring tiles share an eighth of a tile (32 px at 256): a tile's zero-padded border is then seen again
# from inside its neighbour, for 1.3x the tiles of no overlap (a quarter: 1.75x; bench/native_size.py --overlap)
TILE_OVERLAP = 0.125
THUMBNAIL = 1024  # a tiled image's picture and map for the page (keep_arrays): at most this many pixels a side



MAP_THRESHOLD = 0.5  # a pixel of an edit map at or above this probability counts as edited


def edit_region(prob_map, threshold=MAP_THRESHOLD):
    """-> (edit_box [x, y, w, h] around the pixels of an (H, W) edit map at or above `threshold`, or None;
    edit_area: how many pixels those are). In the model's 32x32 view of the image."""
    hit = np.asarray(prob_map) >= threshold
    if not hit.any():
        return None, 0
    rows, cols = np.flatnonzero(hit.any(1)), np.flatnonzero(hit.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)], int(hit.sum())


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


def thumbnail(array, side=THUMBNAIL):
    from PIL import Image
    h, w = array.shape[:2]
    if max(h, w) <= side:
        return array
    size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
    if array.ndim == 2:  # a map: 0..1 floats
        return np.asarray(Image.fromarray(array.astype(np.float32), "F").resize(size, Image.Resampling.BOX))
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BOX))



"""Files to verdicts, whatever runs the network: read a group of files (utils.inference.files), score their views
with the model (one call to `scorer.score`), pool a tiled image's views, and make each verdict
(utils.inference.verdict). Shared by the PyTorch path (`utils.inference.predict.CheckpointScorer`) and the ONNX one
(`utils.inference.onnx_model.OnnxClassifier`), so both give the same results; imports no torch.

A scorer has `classes`, `threshold`, `edit_rule`, `image_size`, `resize`, `outside_cut` (None without an outside
score) and two methods on uint8 views (N, 3, S, S): `score(views) -> (probabilities (N, C), edit maps (N, S, S)
in 0..1 or None)` and `outside(views) -> (N,) outside scores or None`.
"""
import sys
from pathlib import Path

import numpy as np

from data.images import ImageError
from utils.inference.files import (
    MAP_THRESHOLD,
    edit_region,
    expand_paths,
    file_views,
    mask_path,
    stitch,
    thumbnail,
    write_mask,
)
from utils.inference.verdict import rule_edit_scores, verdict_fields

FILES_AT_ONCE = 256  # files read and scored together
TILES_AT_ONCE = 256  # and at most about this many views (a large photo's tiles are scored with no other file's)


def classify_files(scorer, paths, batch_size=None, progress=False, masks_dir=None, keep_arrays=False):
    """Yield one dict per file, in order: {path, resized, label, probability, probabilities, uncertain, outside,
    outside_score} (utils.inference.verdict.verdict_fields), {path, error} (it could not be read) or {path,
    skipped} (in a folder, not an image by its extension).

    `resized`: the file was not S x S. A model that shrinks (`resize`, data/images.py) sees the shrunk centre
    square (docs/model-card.md says what verdicts on such images are worth), and its box is in that view. A
    model at its images' own size ("crop") scores every tile of a larger image (`file_views`) and pools them,
    each verdict then with `tiles` and `image_size` [width, height]: its probabilities are the mean of the
    tiles' (real or generated is a question about the whole image, and every tile is a sample of it: the mean
    keeps one odd tile from deciding), its edit score the largest tile's (an edit is local: one tile holds it),
    its outside score the mean; the map is stitched over the whole image (overlaps averaged), so `edit_box` and
    `mask` are in image pixels. A model with an edit map also gives `edit_box` and `edit_area`
    (`files.edit_region`; a two-part detector's only for an EDITED verdict), and with `masks_dir` the map is
    written there as a PNG (`mask`: its path). With `keep_arrays`, each verdict also carries `view`, the
    (S, S, 3) uint8 image the model saw (a tiled image: the whole picture, at most files.THUMBNAIL pixels a
    side), and `edit_map`, its map or None (for the web page, which draws them)."""
    files = list(expand_paths(paths))
    batch_size = batch_size or FILES_AT_ONCE
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(files), unit="img", file=sys.stderr, desc="predict")
    start = 0
    while start < len(files):
        results, read, end = _read_group(files, start, batch_size, scorer.image_size, scorer.resize, keep_arrays)
        if read:
            _score_group(scorer, results, read, masks_dir, keep_arrays)
        if bar:
            bar.update(end - start)
        start = end
        yield from results
    if bar:
        bar.close()


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
        small = thumbnail(picture) if keep_arrays and picture is not None else None
        read.append((len(results), views, boxes, small, size))
        results.append({"path": str(path), "resized": size != (image_size, image_size)})
        tiles += len(views)
    return results, read, i


def _score_group(scorer, results, read, masks_dir, keep_arrays):
    """Score the views of `read` together and fill in each file's verdict in `results`."""
    views = np.concatenate([v for _, v, _, _, _ in read])
    tile_probs, tile_maps = scorer.score(views)
    tile_outside = scorer.outside(views)
    rule = scorer.edit_rule
    tile_edit = rule_edit_scores(tile_maps, rule) if rule else None
    first = 0
    for slot, own_views, boxes, small, (width, height) in read:
        part = slice(first, first + len(own_views))
        first += len(own_views)
        r = results[slot]
        r.update(verdict_fields(np.asarray(tile_probs[part]).mean(0), scorer.classes, scorer.threshold,
                                None if tile_edit is None else float(tile_edit[part].max()), rule,
                                None if tile_outside is None else float(np.mean(tile_outside[part])),
                                scorer.outside_cut))
        edit_map = None
        if tile_maps is not None:
            edit_map = tile_maps[part][0] if boxes is None else stitch(tile_maps[part], boxes, width, height)
        if boxes is not None:
            r.update(tiles=len(boxes), image_size=[width, height])
        if keep_arrays and boxes is None:
            r.update(view=np.ascontiguousarray(own_views[0].transpose(1, 2, 0)), edit_map=edit_map)
        elif keep_arrays:  # the page draws the stitched map over the whole picture
            r.update(view=small, edit_map=None if edit_map is None else thumbnail(edit_map))
        if edit_map is not None:
            r["edit_box"], r["edit_area"] = edit_region(edit_map, min(MAP_THRESHOLD, rule["cut"]) if rule
                                                        else MAP_THRESHOLD)
            if rule and r["label"] != "EDITED" and not r["possibly_edited"]:
                r["edit_box"], r["edit_area"] = None, 0  # the map decides EDITED: no edit shown, no box
            if masks_dir is not None:
                r["mask"] = str(mask_path(masks_dir, r["path"]))
                write_mask(edit_map, Path(r["mask"]))

"""Unedited photographs from a source the real-photo bench never reads, for training: the edit localiser is shown
them so that a photograph made another way (another camera, its own compression, shrunk from its own size) is not
read as "edited everywhere".

The source is Debian's opencv-doc: the camera photographs among OpenCV's sample images (chosen by eye; drawings,
renders, documents, a motion-blurred photo, ELA's edited example and the near-duplicate frames of a pair are left
out). data/real_photos.py lists the bench's sources: none is here, and a test checks that they stay apart.

`build_other_photos` writes the split `other-photos`: VIEWS_PER_PHOTO square views of each photograph, of a random
side (log-uniform from 32 px to its shorter side; the first is the centred square, predict.py's view) at a random
place, shrunk to 32x32 as predict.py shrinks. Half are saved as PNG (a user's photo as predict.py sees it: no JPEG
after the shrink), half as CIFAKE saves its files (JPEG 75), so neither history reads as an edit. All are REAL:
they only ever join a training part (`--other-photos`), never a validation part or a bench.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from . import degradations, images
from .degradations import CIFAKE_JPEG_QUALITY
from .folders import code_fingerprint, is_fresh, staged_folder, write_manifest
from .images import IMAGE_SIZE, open_rgb, square_view
from .sources import DataError, resolve_split

SPLIT = "other-photos"
INSTALL = "apt-get install opencv-doc"
FOLDER = Path("/usr/share/doc/opencv-doc/examples")
PHOTOS = [f"data/{name}" for name in (
    "aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg", "box_in_scene.png",
    "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png", "home.jpg",
    "leuvenA.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg",
    "stuff.jpg", "sudoku.png")] + ["alphamat/input_images/plant.jpg"]
VIEWS_PER_PHOTO = 400
SEED = 2027


def photo_files(folder=FOLDER) -> tuple:
    """-> (paths found, names not found) of PHOTOS under `folder`."""
    folder = Path(folder)
    return ([folder / n for n in PHOTOS if (folder / n).is_file()], [n for n in PHOTOS if not (folder / n).is_file()])


def random_boxes(width, height, n, rng) -> list:
    """n square boxes (left, top, right, bottom): the centred square, then sides log-uniform from IMAGE_SIZE to the
    shorter side, each at a uniform place."""
    short = min(width, height)
    boxes = [((width - short) // 2, (height - short) // 2, (width - short) // 2 + short, (height - short) // 2 + short)]
    for side in np.exp(rng.uniform(np.log(min(IMAGE_SIZE, short)), np.log(short), n - 1)).astype(int):
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        boxes.append((left, top, left + side, top + side))
    return boxes


def build_other_photos(data_root, log=print, folder=FOLDER, views_per_photo=VIEWS_PER_PHOTO) -> bool:
    """Write `<data_root>/other-photos/REAL` from the photographs found (made again only when this code or its
    photographs change). -> whether the split is there; without any photograph, `log` is told how to get them."""
    paths, missing = photo_files(folder)
    if not paths:
        there = (Path(data_root) / SPLIT).is_dir()
        log(f"  {SPLIT}: {'kept as it is' if there else 'not made'}, none of its {len(PHOTOS)} photographs found "
            f"under {folder} ({INSTALL}; only the edit localiser's training reads it)")
        return there
    target = Path(data_root) / SPLIT
    fingerprint = code_fingerprint(images, degradations, sys.modules[__name__], seed=SEED, views=views_per_photo,
                                   photos={str(p.relative_to(folder)): p.stat().st_size for p in paths})
    if is_fresh(target, fingerprint):
        return True
    rng = np.random.default_rng(SEED)
    with staged_folder(target, replace=True) as stage:
        (stage / "REAL").mkdir(parents=True)
        for path in paths:
            im = open_rgb(path)
            for k, box in enumerate(random_boxes(*im.size, views_per_photo, rng)):
                view = Image.fromarray(square_view(im, box))
                stem = stage / "REAL" / f"{path.stem}-{k:03d}"
                if k % 2:
                    view.save(stem.with_suffix(".jpg"), "JPEG", quality=CIFAKE_JPEG_QUALITY)
                else:
                    view.save(stem.with_suffix(".png"))
        write_manifest(stage, fingerprint, seed=SEED, photos=[str(p.relative_to(folder)) for p in paths],
                       missing=missing, views_per_photo=views_per_photo)
    log(f"  {SPLIT}: REAL={len(paths) * views_per_photo} ({len(paths)} photographs x {views_per_photo} views"
        + (f"; {len(missing)} not found: {', '.join(missing)}" if missing else "") + ")")
    return True


def resolve_photos(split) -> Path:
    """resolve_split, whose error for SPLIT itself says how to make it."""
    try:
        return resolve_split(split)
    except DataError as e:
        if split != SPLIT:
            raise
        raise DataError(f"{e}\n{SPLIT} is made by `python prepare.py` from Debian's opencv-doc photographs: "
                        f"`{INSTALL}` first (`make train-deps`)") from None

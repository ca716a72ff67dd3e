"""Unedited photographs from elsewhere for the edit localiser's training (data/other_photos.py): a source the
real-photo bench never reads, views in both histories (PNG as predict.py sees a photo, JPEG 75 as CIFAKE saves),
and a training part they join as REAL with nothing edited, the validation part untouched."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_split
from PIL import Image

from data import DataError, load_folder
from data import other_photos as op
from data.real_photos import SOURCES, _package_dir, real_photo_files


def test_the_training_photographs_come_from_no_source_the_real_photo_bench_reads():
    training = op.FOLDER.resolve()
    for source, (_, (where, sub, _)) in SOURCES.items():
        bench = Path(where) if where.startswith("/") else _package_dir(where)
        if bench is None:
            continue
        bench = (bench / sub).resolve()
        assert not training.is_relative_to(bench) and not bench.is_relative_to(training), source
    # and no file of one is a copy of a file of the other, wherever both are installed
    digest = lambda p: hashlib.sha1(Path(p).read_bytes()).hexdigest()  # noqa: E731
    assert not {digest(p) for p in op.photo_files()[0]} & {digest(p) for _, p in real_photo_files()[0]}


def _photos(folder: Path, n: int):
    rng = np.random.default_rng(0)
    for name in op.PHOTOS[:n]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        y, x = np.mgrid[0:150, 0:220]
        img = np.stack([x % 256, y % 256, (x + y) % 256], -1) + rng.integers(0, 20, (150, 220, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name)


def test_views_of_every_photograph_found_in_both_histories_made_once(tmp_path):
    _photos(tmp_path / "doc", 2)
    lines = []
    assert op.build_other_photos(tmp_path / "images", lines.append, folder=tmp_path / "doc", views_per_photo=6)
    files = sorted((tmp_path / "images" / op.SPLIT / "REAL").iterdir())
    assert len(files) == 12 and [f.suffix for f in files].count(".png") == 6
    assert [f.suffix for f in files].count(".jpg") == 6
    assert all(Image.open(f).size == (32, 32) for f in files)
    assert "2 photographs x 6 views" in lines[0] and f"{len(op.PHOTOS) - 2} not found" in lines[0]
    before = [f.stat().st_mtime_ns for f in files]
    assert op.build_other_photos(tmp_path / "images", lines.append, folder=tmp_path / "doc", views_per_photo=6)
    assert len(lines) == 1 and [f.stat().st_mtime_ns for f in files] == before  # fresh: not made again


def test_without_the_photographs_nothing_is_made_and_the_log_says_how_to_get_them(tmp_path):
    lines = []
    assert not op.build_other_photos(tmp_path / "images", lines.append, folder=tmp_path / "nothing")
    assert op.INSTALL in lines[0] and not (tmp_path / "images" / op.SPLIT).exists()


def test_views_lie_inside_the_photograph_from_32_px_to_its_shorter_side():
    boxes = op.random_boxes(300, 120, 200, np.random.default_rng(1))
    assert boxes[0] == (90, 0, 210, 120)  # the centred square, predict.py's view
    sides = [r - left for left, _, r, _ in boxes]
    assert all(b - t == s for (_, t, _, b), s in zip(boxes, sides))
    assert min(sides) >= 32 and max(sides) <= 120 and len(set(sides)) > 20
    assert all(0 <= left and r <= 300 and 0 <= t and b <= 120 for left, t, r, b in boxes)


def test_other_photographs_join_the_training_part_as_unedited_real_photos_only(tmp_path):
    from utils.training.config import make_config
    from utils.training.training_data import load_training_data
    root = write_split(tmp_path / "train", {"REAL": 24, "EDITED": 8, "FAKE": 24}, seed=3)
    photos = write_split(tmp_path / "photos", {"REAL": 10}, seed=4)
    common = dict(train_path=str(root), model="edit_map_srm", progress=False)
    plain = load_training_data(make_config(**common), torch.device("cpu"), verbose=False)
    more = load_training_data(make_config(**common, other_photos=str(photos)), torch.device("cpu"), verbose=False)
    assert len(more.train_labels) == len(plain.train_labels) + 10 and (more.train_labels[-10:] == 0).all()  # REAL
    assert torch.equal(more.train_images[-10:], torch.from_numpy(load_folder(photos, verbose=False).images[:]))
    assert not more.train_masks[-10:].any() and torch.equal(more.train_masks[:-10], plain.train_masks)
    assert torch.equal(more.val_images, plain.val_images) and np.array_equal(more.val_labels, plain.val_labels)
    plain_folder = write_split(tmp_path / "plain", {"REAL": 12, "FAKE": 12}, seed=5)  # no EDITED: no masks at all
    two = load_training_data(make_config(**{**common, "train_path": str(plain_folder)}, other_photos=str(photos)),
                             torch.device("cpu"), verbose=False)
    assert two.train_masks is None and len(two.train_labels) == len(two.train_images) and two.train_labels[-1] == 0
    with pytest.raises(DataError, match="REAL/ alone"):
        load_training_data(make_config(**common, other_photos=str(root)), torch.device("cpu"), verbose=False)
    with pytest.raises(DataError, match="opencv-doc"):  # the shipped split's name, not made here: how to make it
        load_training_data(make_config(**common, other_photos=op.SPLIT), torch.device("cpu"), verbose=False)

import json
import multiprocessing as mp
import os

import numpy as np
import pytest
from PIL import Image

from data import DataError, load_folder
from data.cache import default_cache_dir
from tests.conftest import write_split


def test_build_then_reuse(tiny_split):
    first = load_folder(tiny_split, verbose=False)
    assert first.built and first.classes == ["REAL", "FAKE"]
    assert first.images.shape == (96, 3, 32, 32) and first.images.dtype == np.uint8
    assert (first.labels == 0).sum() == 48 and (first.labels == 1).sum() == 48
    second = load_folder(tiny_split, verbose=False)
    assert not second.built
    assert np.array_equal(np.asarray(first.images), np.asarray(second.images))
    # the pixels are the files' pixels, in index order
    i = second.files.index(os.path.join("FAKE", "0003.png"))
    expected = np.asarray(Image.open(tiny_split / "FAKE" / "0003.png")).transpose(2, 0, 1)
    assert np.array_equal(second.images[i], expected) and second.labels[i] == 1


def test_changed_folder_rebuilds(tiny_split):
    load_folder(tiny_split, verbose=False)
    write_split(tiny_split, {"REAL": 50}, seed=9)  # two more REAL files (and the first 48 rewritten)
    again = load_folder(tiny_split, verbose=False)
    assert again.built and again.found == 98 and (again.labels == 0).sum() == 50
    assert len(list(default_cache_dir().glob("*.u8"))) == 1  # the stale array is gone


def test_changed_decoding_code_rebuilds(tiny_split, monkeypatch):
    """The cache key follows the decoding code itself: no hand-bumped version constant to forget."""
    import data.cache
    load_folder(tiny_split, verbose=False)
    assert not load_folder(tiny_split, verbose=False).built  # the same code: reused
    source = data.cache.decoding.__file__
    monkeypatch.setattr(data.cache.decoding, "__file__", __file__)  # as if data/images.py had changed
    data.cache.decoder_fingerprint.cache_clear()
    try:
        assert load_folder(tiny_split, verbose=False).built
    finally:
        monkeypatch.setattr(data.cache.decoding, "__file__", source)
        data.cache.decoder_fingerprint.cache_clear()
    assert load_folder(tiny_split, verbose=False).built  # and back


def test_bad_files_are_listed_and_counts_add_up(tiny_split, capsys):
    (tiny_split / "REAL" / "notes.txt").write_text("hello")
    (tiny_split / "FAKE" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tiny_split / "FAKE" / ".DS_Store").write_bytes(b"junk")  # hidden: not counted as found
    Image.new("RGB", (64, 48), "red").save(tiny_split / "REAL" / "big.png")
    c = load_folder(tiny_split, verbose=True)
    assert c.found == 99 and c.decoded == 97 and len(c.skipped) == 2 and c.resized == 1
    assert c.found == c.decoded + len(c.skipped)
    reasons = dict(c.skipped)
    assert "not an image" in reasons[os.path.join("REAL", "notes.txt")]
    assert os.path.join("FAKE", "broken.jpg") in reasons
    err = capsys.readouterr().err
    assert "99 files found, 97 decoded (1 resized" in err and "2 skipped" in err and "notes.txt" in err


def test_class_names_are_case_insensitive_and_real_is_first(tmp_path):
    root = write_split(tmp_path / "s", {"fake": 3, "Real": 3, "edited": 2})
    c = load_folder(root, verbose=False)
    assert c.classes == ["REAL", "EDITED", "FAKE"]
    assert sorted(np.bincount(c.labels).tolist()) == [2, 3, 3]


def test_folder_without_class_folders_is_a_clear_error(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class folders"):
        load_folder(tmp_path / "flat")


def test_damaged_cache_is_rebuilt(tiny_split):
    load_folder(tiny_split, verbose=False)
    [array] = default_cache_dir().glob("*.u8")
    array.write_bytes(b"garbage")
    c = load_folder(tiny_split, verbose=False)
    assert c.built and c.images.shape[0] == 96


def _build_in_process(args):
    root, cache = args
    os.environ["AIC_CACHE_DIR"] = cache
    c = load_folder(root, verbose=False, workers=1)
    return c.built, int(np.asarray(c.images, dtype=np.int64).sum())


def test_concurrent_builders_leave_one_whole_cache(tiny_split):
    cache = str(default_cache_dir())
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.map(_build_in_process, [(str(tiny_split), cache)] * 3)
    assert sum(built for built, _ in results) == 1  # the lock made the others wait and reuse it
    assert len({checksum for _, checksum in results}) == 1
    index = json.loads(next(default_cache_dir().glob("*.json")).read_text())
    assert len(index["files"]) == 96 and not list(default_cache_dir().glob("*.tmp"))


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    import data.cache
    root = write_split(tmp_path / "p", {"REAL": 30, "FAKE": 30})
    serial = np.asarray(load_folder(root, verbose=False, workers=1).images)
    for f in default_cache_dir().iterdir():
        f.unlink()
    monkeypatch.setattr(data.cache, "PARALLEL_MIN_FILES", 10)
    parallel = load_folder(root, verbose=False, workers=2)
    assert parallel.built and np.array_equal(serial, np.asarray(parallel.images))

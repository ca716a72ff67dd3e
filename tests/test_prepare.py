import tarfile
import zipfile

import pytest

import data.sources
from data import DataError, default_test_path, prepare, resolve_split
from tests.conftest import SHIPPED_ARCHIVE, write_split


def _dataset(root):
    write_split(root / "train", {"REAL": 3, "FAKE": 3})
    write_split(root / "test", {"REAL": 2, "FAKE": 2})
    return root


def test_from_a_tar_gz_with_a_wrapping_folder(tmp_path):
    src = _dataset(tmp_path / "src" / "images")
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="images")
    dest = tmp_path / "dest"
    # the edited test sets are derived from test as soon as it is there
    assert prepare(archive, dest, verbose=False) == ["test", "test-3class", "test-fake-edited", "test-real-edited",
                                                     "train"]
    assert len(list((dest / "train" / "REAL").iterdir())) == 3
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_from_a_kaggle_style_zip(tmp_path):
    src = _dataset(tmp_path / "src")
    archive = tmp_path / "cifake.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in src.rglob("*.png"):
            z.write(f, f.relative_to(src))
    assert {"test", "train"} <= set(prepare(archive, tmp_path / "dest", verbose=False))


def test_from_a_folder_copies_and_keeps_existing_splits(tmp_path):
    src = _dataset(tmp_path / "src")
    dest = tmp_path / "dest"
    write_split(dest / "train", {"REAL": 1})  # already there: kept as it is
    prepare(src, dest, verbose=False)
    assert len(list((dest / "train" / "REAL").iterdir())) == 1
    assert len(list((dest / "test" / "FAKE").iterdir())) == 2
    assert (src / "test").is_dir()  # the source folder is copied, not moved


def test_bad_sources_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no such file"):
        prepare(tmp_path / "missing.zip", tmp_path / "dest")
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a .zip or .tar"):
        prepare(tmp_path / "junk.zip", tmp_path / "dest")
    monkeypatch.setattr(data.sources, "DEFAULT_ARCHIVE", tmp_path / "none.tar.gz")
    with pytest.raises(DataError, match="(?s)CIFAKE.*prepare.py"):
        prepare(None, tmp_path / "dest")


def test_split_names_and_directories(tmp_path):
    root = tmp_path / "images"
    write_split(root / "train-small", {"REAL": 1, "FAKE": 1})
    assert resolve_split("train-small", root) == (root / "train-small").resolve()
    assert resolve_split(str(root / "train-small")) == (root / "train-small").resolve()
    with pytest.raises(DataError, match="splits there: train-small"):
        resolve_split("train-huge", root, auto_prepare=False)


def test_seed_test_pairing():
    assert default_test_path("train") == "test"
    assert default_test_path("train-small") == "test"
    assert default_test_path("train-real-edited") == "test-real-edited"
    assert default_test_path("images/train-fake-edited/") == "test-fake-edited"
    assert default_test_path("train-3class") == "test-3class"


@pytest.mark.skipif(not SHIPPED_ARCHIVE.is_file(), reason=f"shipped archive {SHIPPED_ARCHIVE} not present")
def test_shipped_archive_unpacks_into_the_seed_layout(tmp_path, monkeypatch):
    dest = tmp_path / "images"
    splits = prepare(SHIPPED_ARCHIVE, dest, verbose=False)
    assert {"train", "train-small", "train-medium", "test", "train-real-edited", "train-fake-edited",
            "test-real-edited", "test-fake-edited", "test-3class", "train-3class"} <= set(splits)
    assert len(list((dest / "train-small" / "REAL").iterdir())) == 1000
    assert len(list((dest / "train-real-edited" / "EDITED").iterdir())) == 1500
    # a split name resolves, and train.py's auto-prepare finds it under the data root
    monkeypatch.setenv("AIC_DATA_ROOT", str(dest))
    assert resolve_split("train-small") == (dest / "train-small").resolve()

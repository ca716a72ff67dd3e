import shutil
import tarfile
import zipfile

import pytest

import data.sources
from data import DataError, default_test_path, prepare, resolve_split
from tests.conftest import REPO, SHIPPED_ARCHIVE, write_split


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
    # the edited test sets and the perturbed copies are derived from test as soon as it is there
    assert prepare(archive, dest, verbose=False) == [
        "test", "test-3class", "test-blur", "test-fake-edited", "test-flip", "test-jpeg50", "test-jpeg75",
        "test-noise", "test-real-edited", "test-resize", "train"]
    assert len(list((dest / "train" / "REAL").iterdir())) == 3
    assert not [p for p in dest.iterdir() if p.is_dir() and p.name.startswith(".")]  # no temporary folder left


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
    with pytest.raises(DataError, match="(?s)splits there: train-small.*prepare.py"):
        resolve_split("train-huge", root)


def test_looking_up_a_split_writes_nothing(tmp_path, monkeypatch):
    """Even with the shipped archive in reach, a missing split is an error, not an unpacking."""
    root = tmp_path / "images"
    write_split(root / "test", {"REAL": 2, "FAKE": 2})
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root / "test", arcname="images/train-small")
    monkeypatch.setattr(data.sources, "DEFAULT_ARCHIVE", archive)
    for name in ("train-small", "test-real-edited", "test-jpeg75"):
        with pytest.raises(DataError, match="(?s)splits there: test.*python prepare.py"):
            resolve_split(name, root)
    assert sorted(p.name for p in root.iterdir()) == ["test"]


def test_the_data_package_has_no_import_cycle():
    """Each module of data/ imports only modules listed before it in this order (lower layers first)."""
    import ast
    order = ["lazy", "rows", "sources", "images", "folders", "cache", "edits", "degradations", "edit_families",
             "synthetic_edits", "batches", "derived", "perturbed", "preparation"]
    for i, name in enumerate(order):
        tree = ast.parse((REPO / "data" / f"{name}.py").read_text())
        imported = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1
                    and n.module} | {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1
                                     and not n.module for a in n.names}
        assert imported <= set(order[:i]), f"data/{name}.py imports {imported - set(order[:i])}"


def test_unpacking_an_archive_twice_reads_it_once(tmp_path, capsys):
    src = _dataset(tmp_path / "src")
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="cifake")
    dest = tmp_path / "dest"
    prepare(archive, dest)
    prepare(archive, dest)
    assert "already unpacked" in capsys.readouterr().err
    shutil.rmtree(dest / "test")  # a split removed by hand is unpacked again
    prepare(archive, dest, verbose=False)
    assert (dest / "test" / "FAKE").is_dir()


def test_seed_test_pairing():
    assert default_test_path("my/photos") is None  # a user's folder: no CIFAKE test report unless asked
    assert default_test_path("train") == "test"
    assert default_test_path("train-small") == "test"
    assert default_test_path("train-real-edited") == "test-real-edited"
    assert default_test_path("images/train-fake-edited/") == "test-fake-edited"
    assert default_test_path("train-3class") == "test-3class"


def test_shipped_archive_unpacks_into_the_seed_layout(shipped_root, monkeypatch):
    dest = shipped_root
    splits = prepare(SHIPPED_ARCHIVE, dest, verbose=False)  # the second time: everything is found there
    assert {"train", "train-small", "train-medium", "test", "train-real-edited", "train-fake-edited",
            "test-real-edited", "test-fake-edited", "test-3class", "train-3class"} <= set(splits)
    assert len(list((dest / "train-small" / "REAL").iterdir())) == 1000
    assert len(list((dest / "train-real-edited" / "EDITED").iterdir())) == 1500
    # a split name resolves under the data root
    monkeypatch.setenv("AIC_DATA_ROOT", str(dest))
    assert resolve_split("train-small") == (dest / "train-small").resolve()

"""Where the data lives: unpacking a dataset into `images/`, resolving split names, class order.

`images/<split>/<CLASS>/<files>` is the seed's layout (its `base_path`). A split is named (`train-small`)
or given as any directory. Class folder names are compared case-insensitively; REAL is the negative class.
"""
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_root() -> Path:
    """`images/` in the repo (the seed's base_path), or $AIC_DATA_ROOT, read at call time."""
    return Path(os.environ.get("AIC_DATA_ROOT") or REPO_ROOT / "images")


DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "datasets" / "cifake-seed.tar.gz"
NEGATIVE_CLASS = "REAL"

WHERE_TO_GET_DATA = (
    "Get CIFAKE (Kaggle: 'CIFAKE: Real and AI-Generated Synthetic Images', birdy654/cifake-real-and-ai-"
    "generated-synthetic-images, a zip with train/REAL, train/FAKE, test/REAL, test/FAKE), then run\n"
    "  python prepare.py /path/to/cifake.zip      (or a folder laid out as <split>/<CLASS>/<images>)")


class DataError(Exception):
    """A data problem a user can fix; the message names the path and what is wrong."""


def order_classes(names) -> list:
    """Upper-cased class names, REAL first (the negative class), then alphabetical."""
    upper = sorted({n.upper() for n in names})
    return sorted(upper, key=lambda c: (c != NEGATIVE_CLASS, c))


TEST_PAIRING = {"train-real-edited": "test-real-edited", "train-fake-edited": "test-fake-edited",
                "train-3class": "test-3class"}


def default_test_path(train_path: str) -> str:
    """The seed's pairing: train-real-edited -> test-real-edited, train-fake-edited -> test-fake-edited (and
    train-3class -> test-3class); any other split -> test."""
    return TEST_PAIRING.get(Path(str(train_path).rstrip("/")).name, "test")


def list_splits(data_root=None) -> list:
    root = Path(data_root or default_data_root())
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve_split(path_or_name, data_root=None, auto_prepare=True) -> Path:
    """An existing directory as it is; otherwise a split name under the data root, unpacking the default
    archive first when the data root lacks it."""
    p = Path(str(path_or_name))
    if p.is_dir():
        return p.resolve()
    root = Path(data_root or default_data_root())
    if len(p.parts) == 1:
        candidate = root / p.name
        if not candidate.is_dir() and auto_prepare and DEFAULT_ARCHIVE.is_file() and not list_splits(root):
            prepare(DEFAULT_ARCHIVE, root)
        if not candidate.is_dir() and list_splits(root):
            from .derived import build_derived_splits
            from .perturbed import build_perturbed_split
            if p.name in build_derived_splits(root) or build_perturbed_split(root, p.name):
                return candidate.resolve()
        if candidate.is_dir():
            return candidate.resolve()
    have = list_splits(root)
    raise DataError(f"{path_or_name}: no such directory or split under {root}/ "
                    + (f"(splits there: {', '.join(have)})" if have else "(none prepared yet; run prepare.py)"))


def _visible_dirs(d: Path) -> list:
    return [c for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".") and c.name != "__MACOSX"]


def _is_split(d: Path) -> bool:
    """A split holds class folders, and class folders hold files."""
    return any(any(f.is_file() for f in c.iterdir()) for c in _visible_dirs(d))


def _find_dataset_root(d: Path) -> Path:
    """Descend through single wrapping folders (`images/`, `cifake/`) to the folder holding the splits."""
    while not any(_is_split(c) for c in _visible_dirs(d)) and len(_visible_dirs(d)) == 1:
        d = _visible_dirs(d)[0]
    return d


def prepare(source=None, data_root=None, verbose=True) -> list:
    """Unpack SOURCE (a .tar.gz/.tgz/.tar or .zip archive, or a folder of <split>/<CLASS>/<images>) into the
    data root, one split at a time; splits already there are kept. Returns the split names now present."""
    root = Path(data_root or default_data_root())
    if source is None:
        if not DEFAULT_ARCHIVE.is_file():
            raise DataError(f"no dataset given and the default archive {DEFAULT_ARCHIVE} does not exist.\n"
                            + WHERE_TO_GET_DATA)
        source = DEFAULT_ARCHIVE
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or directory.\n" + WHERE_TO_GET_DATA)
    root.mkdir(parents=True, exist_ok=True)
    log = (lambda msg: print(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as tmp:
        tmp = Path(tmp)
        if source.is_dir():
            dataset = _find_dataset_root(source)
            copy = True
        else:
            log(f"unpacking {source} ...")
            try:
                if zipfile.is_zipfile(source):
                    with zipfile.ZipFile(source) as z:
                        z.extractall(tmp)  # zipfile drops absolute paths and '..'
                elif tarfile.is_tarfile(source):
                    with tarfile.open(source) as t:
                        t.extractall(tmp, filter="data")  # refuses paths outside tmp, links out, devices
                else:
                    raise DataError(f"{source}: not a .zip or .tar(.gz) archive, nor a folder")
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
                raise DataError(f"{source}: cannot unpack: {e}") from None
            dataset = _find_dataset_root(tmp)
            copy = False
        splits = [d for d in _visible_dirs(dataset) if _is_split(d)]
        if not splits:
            raise DataError(f"{source}: found no <split>/<CLASS>/<images> folders inside")
        for split in splits:
            target = root / split.name
            if target.exists():
                log(f"  {split.name}: already in {root}/, kept as it is")
                continue
            staging = tmp / (".staging-" + split.name)
            if copy:
                shutil.copytree(split, staging)
            else:
                os.replace(split, staging)
            os.replace(staging, target)  # a split appears whole or not at all
            counts = ", ".join(f"{c.name}={sum(1 for _ in c.iterdir())}" for c in sorted(target.iterdir())
                               if c.is_dir())
            log(f"  {split.name}: {counts}")
    from .derived import build_derived_splits  # here, not at the top: derived builds on this module
    build_derived_splits(root, verbose)
    return list_splits(root)

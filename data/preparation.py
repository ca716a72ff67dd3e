"""`prepare()`: unpack a dataset into the data root, then make every derived split, once. With
data.other_photos (which prepare.py also calls), the only code that writes splits; a split that is already there
and was made by the current code is kept.

1. unpack SOURCE (a .tar.gz/.tgz/.tar or .zip archive, or a folder of <split>/<CLASS>/<images>); an archive
   already unpacked (same path, size and mtime, recorded in `.unpacked.json`) is not read again;
2. the edited and three-class splits (data.derived);
3. the perturbed test copies of `test` and of each split in `perturb` (data.perturbed).
"""
import json
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from . import sources
from .derived import build_derived_splits
from .folders import staged_folder
from .perturbed import build_perturbed_splits
from .sources import WHERE_TO_GET_DATA, DataError, default_data_root, list_splits

UNPACKED = ".unpacked.json"  # the archives unpacked into a data root: {path: {size, mtime_ns, splits}}


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


def _extract(source: Path, into: Path):
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as z:
                z.extractall(into)  # zipfile drops absolute paths and '..'
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as t:
                t.extractall(into, filter="data")  # refuses paths outside `into`, links out, devices
        else:
            raise DataError(f"{source}: not a .zip or .tar(.gz) archive, nor a folder")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{source}: cannot unpack: {e}") from None


def unpack(source, root: Path, log) -> list:
    """Put each split of SOURCE under root, one at a time and whole; splits already there are kept."""
    source, root = Path(source), Path(root)
    record_path = root / UNPACKED
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    stat = source.stat()
    seen = record.get(str(source.resolve()), {})
    if (source.is_file() and seen.get("size") == stat.st_size and seen.get("mtime_ns") == stat.st_mtime_ns
            and all((root / s).is_dir() for s in seen.get("splits", []))):
        log(f"{source}: already unpacked into {root}/")
        return list_splits(root)
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as tmp:
        if source.is_dir():
            dataset = _find_dataset_root(source)
        else:
            log(f"unpacking {source} ...")
            _extract(source, Path(tmp))
            dataset = _find_dataset_root(Path(tmp))
        splits = [d for d in _visible_dirs(dataset) if _is_split(d)]
        names = [d.name for d in splits]
        if not splits:
            raise DataError(f"{source}: found no <split>/<CLASS>/<images> folders inside")
        for split in splits:
            target = root / split.name
            if target.exists():
                log(f"  {split.name}: already in {root}/, kept as it is")
                continue
            with staged_folder(target) as stage:
                if source.is_dir():
                    shutil.copytree(split, stage)
                else:
                    split.rename(stage)  # the same filesystem: a rename, not a copy
            counts = ", ".join(f"{c.name}={sum(1 for _ in c.iterdir())}" for c in sorted(target.iterdir())
                               if c.is_dir())
            log(f"  {split.name}: {counts}")
    if source.is_file():
        record[str(source.resolve())] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "splits": names}
        record_path.write_text(json.dumps(record, indent=1))
    return list_splits(root)


def prepare(source=None, data_root=None, perturb=(), verbose=True) -> list:
    """Unpack SOURCE (default: the shipped archive) into the data root and make every derived split; returns
    the split names now present. `perturb`: more splits to write perturbed copies of (`test` always is)."""
    root = Path(data_root or default_data_root())
    if source is None:
        source = sources.DEFAULT_ARCHIVE  # read at call time, so a test or a notebook can point it elsewhere
        if not source.is_file():
            raise DataError(f"no dataset given and the default archive {source} does not exist.\n"
                            + WHERE_TO_GET_DATA)
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or directory.\n" + WHERE_TO_GET_DATA)
    root.mkdir(parents=True, exist_ok=True)
    log = (lambda msg: print(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    unpack(source, root, log)
    build_derived_splits(root, verbose)
    for base in dict.fromkeys((["test"] if (root / "test").is_dir() else []) + list(perturb)):
        build_perturbed_splits(root, base, verbose)
    return list_splits(root)

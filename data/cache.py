"""Decode a `<folder>/<CLASS>/<files>` tree once into a uint8 array cache on disk, read back a batch at a time.

The cache is two files per folder and view (image size and resize mode, data/images.py) in the cache
directory: `<key>-<signature>.u8`, the raw (N, 3, S, S) uint8 rows, and `<key>.json`, the index (files,
labels, classes, the array's shape, the folder's signature, and what was skipped and why). The rows are
written as they are decoded and read back with positioned reads (data/rows.py), so neither building nor
training holds a split in memory. The signature hashes every file's relative path, size and mtime, the
view and the decoding code itself (data/images.py, this module, Pillow's version), so a changed folder or a
changed decoder rebuilds the cache.
Both files are written to a temporary name and renamed into place (index last), and builders take a file
lock, so a killed run or two processes building at once (notebooks, torchrun ranks) never leave a half cache.
"""
import functools
import hashlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL

from . import images as decoding
from .folders import code_fingerprint, read_manifest
from .images import IMAGE_SIZE, RESIZE_MODES, ImageError, load_image
from .rows import DiskRows
from .sources import DataError, order_classes


def default_cache_dir() -> Path:
    """`.cache/` in the repo, or $AIC_CACHE_DIR (read at call time, so tests and notebooks can redirect it)."""
    return Path(os.environ.get("AIC_CACHE_DIR") or Path(__file__).resolve().parent.parent / ".cache")

PARALLEL_MIN_FILES = 2000  # below this, starting worker processes costs more than it saves
CHUNK_FILES = 256  # files a worker decodes and hands back at once: the build holds a few of these, never a split


@dataclass
class CachedFolder:
    """A decoded folder: `images` (N, 3, S, S) uint8 (on disk, read when indexed: data.rows.DiskRows),
    `labels` (N,) int64, the view (`image_size`, `resize`) and the report."""
    root: Path
    classes: list
    images: DiskRows
    labels: np.ndarray
    files: list
    found: int
    resized: int
    skipped: list = field(default_factory=list)  # [(relative path, reason)]
    built: bool = False  # True when this call decoded the folder, False when it reused the cache
    image_size: int = IMAGE_SIZE
    resize: str = "shrink"

    @functools.cached_property
    def manifest(self) -> dict:
        """The split's manifest.json (data.folders), read once: which image was edited how, from which photo."""
        return read_manifest(self.root)

    @property
    def decoded(self) -> int:
        return len(self.files)

    def summary(self) -> str:
        how = "resized to" if self.resize == "shrink" else "cropped to"
        s = (f"{self.root}: {self.found} files found, {self.decoded} decoded ({self.resized} {how} "
             f"{self.image_size}x{self.image_size}), {len(self.skipped)} skipped; classes "
             + ", ".join(f"{c}={int((self.labels == i).sum())}" for i, c in enumerate(self.classes)))
        return s + (" [decoded now]" if self.built else " [from cache]")

    def skipped_lines(self, limit: int = 20) -> list:
        lines = [f"  skipped {f}: {reason}" for f, reason in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more (all listed in the cache index)")
        return lines


def scan_folder(root: Path):
    """-> (class folder names in label order, [(relative path, class index, size, mtime_ns)]).

    Every non-hidden regular file under a class folder counts as found; hidden files (.DS_Store) do not.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    class_dirs = {}
    for entry in os.scandir(root):
        if entry.is_dir() and not entry.name.startswith("."):
            key = entry.name.upper()
            if key in class_dirs:
                raise DataError(f"{root}: class folders {class_dirs[key]!r} and {entry.name!r} differ only in case")
            class_dirs[key] = entry.name
    if not class_dirs:
        raise DataError(f"{root}: no class folders found (expected {root}/<CLASS>/<images>, e.g. REAL/ and FAKE/)")
    classes = order_classes(class_dirs)
    entries = []
    for label, cls in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / class_dirs[cls]):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, root)  # once a folder, not once a file: 100k files scan in ~1 s
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                st = os.stat(os.path.join(dirpath, name))
                entries.append((os.path.join(rel_dir, name), label, st.st_size, st.st_mtime_ns))
    return classes, entries


@functools.lru_cache(maxsize=None)
def decoder_fingerprint(image_size=IMAGE_SIZE, resize="shrink") -> str:
    """What turns files into the cached arrays: the decoding code, this module, Pillow's version and the view."""
    return code_fingerprint(decoding, sys.modules[__name__], sys.modules[DiskRows.__module__],
                            pillow=PIL.__version__, size=image_size, resize=resize)


def folder_signature(entries, image_size=IMAGE_SIZE, resize="shrink") -> str:
    h = hashlib.sha1(decoder_fingerprint(image_size, resize).encode())
    for rel, label, size, mtime in entries:
        h.update(f"{rel}\0{label}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:16]


def _decode_chunk(args):
    root, rels, image_size, resize = args
    out = np.empty((len(rels), 3, image_size, image_size), dtype=np.uint8)
    status = []  # per file: None (ok), "resized", or the error reason
    for i, rel in enumerate(rels):
        try:
            array, resized = load_image(os.path.join(root, rel), image_size, resize)
            out[i] = array.transpose(2, 0, 1)
            status.append("resized" if resized else None)
        except ImageError as e:
            status.append(f"error: {e}")
    return out, status


def _decoded_chunks(root: Path, rels, workers: int, image_size: int, resize: str):
    """Yield (uint8 (n, 3, S, S), statuses) for consecutive chunks of `rels`, in order."""
    chunks = [(str(root), rels[i:i + CHUNK_FILES], image_size, resize) for i in range(0, len(rels), CHUNK_FILES)]
    if workers <= 1 or len(rels) < PARALLEL_MIN_FILES:
        yield from map(_decode_chunk, chunks)
        return
    # fork: workers only need PIL and numpy, and spawn would re-import the caller's script (and torch).
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_decode_chunk, chunks)


def atomic_write(path: Path, write):
    """Write `path` through `write(file)` into a temporary file beside it, then rename: a reader never sees half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would make it: mkstemp's file is the owner's alone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _build_lock(path: Path):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): atomic renames still keep the cache whole
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cache_key(root: Path, image_size=IMAGE_SIZE, resize="shrink") -> str:
    view = "" if (image_size, resize) == (IMAGE_SIZE, "shrink") else f"-{resize}{image_size}"
    return f"{root.name}-{hashlib.sha1(str(root).encode()).hexdigest()[:8]}{view}"


def _read_cache(index_path: Path, signature: str, root: Path):
    try:
        index = json.loads(index_path.read_text())
        if index.get("signature") != signature:
            return None
        shape = tuple(index["shape"])
        path = index_path.parent / index["array"]
        if shape[0] != len(index["files"]) or path.stat().st_size != int(np.prod(shape)):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: rebuild
    return CachedFolder(root=root, classes=index["classes"], images=DiskRows(path, shape),
                        labels=np.asarray(index["labels"], dtype=np.int64), files=index["files"],
                        found=index["found"], resized=index["resized"],
                        skipped=[tuple(s) for s in index["skipped"]], image_size=shape[-1],
                        resize=index["resize"])


def load_folder(root, cache_dir=None, workers=None, verbose=True, image_size=IMAGE_SIZE,
                resize="shrink") -> CachedFolder:
    """The folder's images at `image_size`, brought to it by `resize` (data.images.RESIZE_MODES), as a
    CachedFolder, decoding it (on all cores) only if its cache is missing or stale."""
    if resize not in RESIZE_MODES:
        raise DataError(f"unknown resize mode {resize!r}; use one of {', '.join(RESIZE_MODES)}")
    if int(image_size) < 8:
        raise DataError(f"image size {image_size}: too small for any model here (at least 8 pixels)")
    image_size = int(image_size)
    root = Path(root).resolve()
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    classes, entries = scan_folder(root)
    signature = folder_signature(entries, image_size, resize)
    key = _cache_key(root, image_size, resize)
    index_path = cache_dir / f"{key}.json"
    cached = _read_cache(index_path, signature, root)
    if cached is None:
        with _build_lock(cache_dir / f"{key}.lock"):
            cached = _read_cache(index_path, signature, root)  # another process may have built it meanwhile
            if cached is None:
                cached = _build(root, cache_dir, key, classes, entries, signature, workers, verbose, image_size,
                                resize)
    if verbose:
        print(cached.summary(), file=sys.stderr)
        for line in cached.skipped_lines():
            print(line, file=sys.stderr)
    return cached


def _build(root, cache_dir, key, classes, entries, signature, workers, verbose, image_size, resize):
    t0 = time.perf_counter()
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    rels = [e[0] for e in entries]
    if verbose:
        print(f"decoding {len(rels)} files under {root} into the cache at {image_size}x{image_size} ({resize}, "
              f"{workers} processes)...", file=sys.stderr)
    bar = None
    if verbose and len(rels) >= PARALLEL_MIN_FILES:
        from tqdm import tqdm
        bar = tqdm(total=len(rels), unit="img", file=sys.stderr, desc="decode", mininterval=2)
    status = []
    array_name = f"{key}-{signature}.u8"

    def write(f):  # rows are appended as their chunk arrives: the build never holds the split
        for chunk, chunk_status in _decoded_chunks(root, rels, workers, image_size, resize):
            ok = np.array([s is None or s == "resized" for s in chunk_status], dtype=bool)
            f.write(np.ascontiguousarray(chunk[ok]).data)
            status.extend(chunk_status)
            if bar:
                bar.update(len(chunk_status))
    atomic_write(cache_dir / array_name, write)
    if bar:
        bar.close()
    ok = [s is None or s == "resized" for s in status]
    files = [r for r, keep in zip(rels, ok) if keep]
    labels = [e[1] for e, keep in zip(entries, ok) if keep]
    skipped = [(r, s[len("error: "):]) for r, s in zip(rels, status) if s not in (None, "resized")]
    resized = sum(s == "resized" for s in status)
    index = {"root": str(root), "signature": signature, "array": array_name,
             "shape": [len(files), 3, image_size, image_size], "resize": resize,
             "classes": classes, "files": files, "labels": labels, "found": len(entries),
             "resized": resized, "skipped": skipped, "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write(cache_dir / f"{key}.json", lambda f: f.write(json.dumps(index).encode()))
    for old in list(cache_dir.glob(f"{key}-*.u8")) + list(cache_dir.glob(f"{key}-*.npy")):  # this view's stale arrays
        if old.name != array_name and old.name[len(key) + 1:].count("-") == 0:  # not another view's array
            old.unlink(missing_ok=True)
    cached = _read_cache(cache_dir / f"{key}.json", signature, root)
    cached.built = True
    return cached

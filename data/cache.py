"""Decode a `<folder>/<CLASS>/<files>` tree once into a uint8 array cache, then memory-map it.

The cache is two files per folder in the cache directory: `<key>-<signature>.npy` (N, 3, 32, 32) uint8 and
`<key>.json`, the index (files, labels, classes, the folder's signature, and what was skipped and why).
The signature hashes every file's relative path, size and mtime and the decoding code itself (data/images.py,
this module, Pillow's version), so a changed folder or a changed decoder rebuilds the cache.
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
from .folders import code_fingerprint
from .images import IMAGE_SIZE, ImageError, load_image
from .sources import DataError, order_classes


def default_cache_dir() -> Path:
    """`.cache/` in the repo, or $AIC_CACHE_DIR (read at call time, so tests and notebooks can redirect it)."""
    return Path(os.environ.get("AIC_CACHE_DIR") or Path(__file__).resolve().parent.parent / ".cache")

PARALLEL_MIN_FILES = 2000  # below this, starting worker processes costs more than it saves


@dataclass
class CachedFolder:
    """A decoded folder: `images` (N, 3, 32, 32) uint8 (memory-mapped), `labels` (N,) int64, and the report."""
    root: Path
    classes: list
    images: np.ndarray
    labels: np.ndarray
    files: list
    found: int
    resized: int
    skipped: list = field(default_factory=list)  # [(relative path, reason)]
    built: bool = False  # True when this call decoded the folder, False when it reused the cache

    @property
    def decoded(self) -> int:
        return len(self.files)

    def summary(self) -> str:
        s = (f"{self.root}: {self.found} files found, {self.decoded} decoded ({self.resized} resized to "
             f"{IMAGE_SIZE}x{IMAGE_SIZE}), {len(self.skipped)} skipped; classes "
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
def decoder_fingerprint() -> str:
    """What turns files into the cached arrays: the decoding code, this module and Pillow's version."""
    return code_fingerprint(decoding, sys.modules[__name__], pillow=PIL.__version__, size=IMAGE_SIZE)


def folder_signature(entries) -> str:
    h = hashlib.sha1(decoder_fingerprint().encode())
    for rel, label, size, mtime in entries:
        h.update(f"{rel}\0{label}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:16]


def _decode_chunk(args):
    root, rels = args
    out = np.empty((len(rels), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    status = []  # per file: None (ok), "resized", or the error reason
    for i, rel in enumerate(rels):
        try:
            out[i], resized = load_image(os.path.join(root, rel))
            status.append("resized" if resized else None)
        except ImageError as e:
            status.append(f"error: {e}")
    return out, status


def _decode_all(root: Path, rels, workers: int):
    if workers <= 1 or len(rels) < PARALLEL_MIN_FILES:
        return _decode_chunk((str(root), rels))
    n_chunks = workers * 8
    chunks = [(str(root), rels[i::n_chunks]) for i in range(n_chunks)]
    # fork: workers only need PIL and numpy, and spawn would re-import the caller's script (and torch).
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        results = pool.map(_decode_chunk, chunks)
    # undo the strided split so that order matches `rels`
    out = np.empty((len(rels), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    status = [None] * len(rels)
    for i, (arr, st) in enumerate(results):
        out[i::n_chunks] = arr
        status[i::n_chunks] = st
    return out, status


def _atomic_write(path: Path, write):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
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


def _cache_key(root: Path) -> str:
    return f"{root.name}-{hashlib.sha1(str(root).encode()).hexdigest()[:8]}"


def _read_cache(index_path: Path, signature: str, root: Path):
    try:
        index = json.loads(index_path.read_text())
        if index.get("signature") != signature:
            return None
        images = np.load(index_path.parent / index["array"], mmap_mode="c")  # copy-on-write: never touches the file
        if images.shape != (len(index["files"]), 3, IMAGE_SIZE, IMAGE_SIZE) or images.dtype != np.uint8:
            return None
    except (OSError, ValueError, KeyError):
        return None  # missing or damaged: rebuild
    return CachedFolder(root=root, classes=index["classes"], images=images,
                        labels=np.asarray(index["labels"], dtype=np.int64), files=index["files"],
                        found=index["found"], resized=index["resized"],
                        skipped=[tuple(s) for s in index["skipped"]])


def load_folder(root, cache_dir=None, workers=None, verbose=True) -> CachedFolder:
    """The folder's images as a CachedFolder, decoding it (on all cores) only if its cache is missing or stale."""
    root = Path(root).resolve()
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    classes, entries = scan_folder(root)
    signature = folder_signature(entries)
    key = _cache_key(root)
    index_path = cache_dir / f"{key}.json"
    cached = _read_cache(index_path, signature, root)
    if cached is None:
        with _build_lock(cache_dir / f"{key}.lock"):
            cached = _read_cache(index_path, signature, root)  # another process may have built it meanwhile
            if cached is None:
                cached = _build(root, cache_dir, key, classes, entries, signature, workers, verbose)
    if verbose:
        print(cached.summary(), file=sys.stderr)
        for line in cached.skipped_lines():
            print(line, file=sys.stderr)
    return cached


def _build(root, cache_dir, key, classes, entries, signature, workers, verbose):
    t0 = time.perf_counter()
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    rels = [e[0] for e in entries]
    if verbose:
        print(f"decoding {len(rels)} files under {root} into the cache ({workers} processes)...", file=sys.stderr)
    decoded, status = _decode_all(root, rels, workers)
    ok = np.array([s is None or s == "resized" for s in status], dtype=bool)
    images = np.ascontiguousarray(decoded[ok].transpose(0, 3, 1, 2))
    files = [r for r, keep in zip(rels, ok) if keep]
    labels = [e[1] for e, keep in zip(entries, ok) if keep]
    skipped = [(r, s[len("error: "):]) for r, s in zip(rels, status) if s not in (None, "resized")]
    resized = sum(s == "resized" for s in status)
    array_name = f"{key}-{signature}.npy"
    _atomic_write(cache_dir / array_name, lambda f: np.save(f, images))
    index = {"root": str(root), "signature": signature, "array": array_name,
             "classes": classes, "files": files, "labels": labels, "found": len(entries),
             "resized": resized, "skipped": skipped, "seconds": round(time.perf_counter() - t0, 2)}
    _atomic_write(cache_dir / f"{key}.json", lambda f: f.write(json.dumps(index).encode()))
    for old in cache_dir.glob(f"{key}-*.npy"):  # arrays of earlier versions of this folder
        if old.name != array_name:
            old.unlink(missing_ok=True)
    cached = _read_cache(cache_dir / f"{key}.json", signature, root)
    cached.built = True
    return cached

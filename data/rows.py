"""A cached split's images on disk: rows of a raw uint8 array file, read on demand with positioned reads.

Nothing is memory-mapped, so a split larger than memory costs only the rows asked for: a mapped file's pages
count as the process's resident memory once touched, and a pass over 50,000 images at 256 px would touch
9.8 GB of them. Rows asked for in order (a sorted batch, a slice, a split's indices) are read as runs of
consecutive rows, one system call a run.
"""
import os
from pathlib import Path

import numpy as np


class DiskRows:
    """An (N, ...) uint8 array in a file, indexed like a numpy array (an int, a slice, integer or boolean
    indices, also as a torch tensor); every index returns a new in-memory array. `rows`: a view of those rows
    of the file only (see `subset`)."""

    def __init__(self, path, shape, rows=None):
        self.path, self.file_shape = Path(path), tuple(int(s) for s in shape)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.dtype = np.dtype(np.uint8)
        self.row_bytes = int(np.prod(self.file_shape[1:], dtype=np.int64))
        self._fd, self._pid = None, None

    @property
    def shape(self) -> tuple:
        return (len(self),) + self.file_shape[1:]

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    @property
    def ndim(self) -> int:
        return len(self.file_shape)

    def __len__(self):
        return self.file_shape[0] if self.rows is None else len(self.rows)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def subset(self, index) -> "DiskRows":
        """The rows `index` (into this view) as a view of the same file: nothing is read."""
        return DiskRows(self.path, self.file_shape, self._file_rows(self._indices(index)))

    def _indices(self, index) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(*index.indices(len(self)), dtype=np.int64)
        index = np.asarray(index.numpy() if hasattr(index, "numpy") else index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"a boolean index of shape {index.shape} for {len(self)} rows")
            return np.flatnonzero(index)
        index = index.astype(np.int64, copy=False).reshape(-1)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        return np.where(index < 0, index + len(self), index)

    def _file_rows(self, index) -> np.ndarray:
        return index if self.rows is None else self.rows[index]

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), os.getpid()
        return self._fd

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        rows = self._file_rows(self._indices(index))
        out = np.empty((len(rows),) + self.file_shape[1:], dtype=np.uint8)
        if len(rows) == 0:
            return out
        order = np.argsort(rows, kind="stable")
        in_order = bool((order == np.arange(len(rows))).all())
        sorted_rows = rows if in_order else rows[order]
        target = out if in_order else np.empty_like(out)
        flat = target.reshape(len(rows), -1)
        fd = self._descriptor()
        starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_rows) != 1) + 1, [len(rows)]])
        for a, b in zip(starts[:-1], starts[1:]):
            view = memoryview(flat[a:b]).cast("B")
            offset, done = int(sorted_rows[a]) * self.row_bytes, 0
            while done < len(view):  # a read may return less than asked
                got = os.preadv(fd, [view[done:]], offset + done) if hasattr(os, "preadv") else \
                    _pread_into(fd, view[done:], offset + done)
                if got <= 0:
                    raise OSError(f"{self.path}: the cache file ends early (row {int(sorted_rows[a])})")
                done += got
        if not in_order:
            out[order] = target
        return out

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def _pread_into(fd, view, offset) -> int:
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)

"""Folders the repo writes itself (unpacked splits, edited and perturbed copies) and what made them.

- `staged_folder(target)`: build a folder under a hidden temporary name beside `target`, then rename it into
  place, so a split appears whole or not at all (a killed run leaves no half split).
- `code_fingerprint(*modules, **params)`: a short hash of the source files and parameters that made a folder.
  A derived split records it in its `manifest.json`, and `is_fresh` compares it with the current code: a
  changed recipe rebuilds the split instead of silently keeping images made by the old one.
"""
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"


@contextmanager
def staged_folder(target, replace=False):
    """Yield a path (not yet created) to build the folder at; on success it is renamed to `target`.
    An existing `target` is kept and the new folder dropped, unless `replace`. On an error nothing changes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".staging-{target.name}-") as tmp:
        stage = Path(tmp) / target.name
        yield stage
        if target.exists():
            if not replace:
                return
            os.replace(target, Path(tmp) / ".replaced")  # deleted with the temporary folder
        os.replace(stage, target)


def code_fingerprint(*modules, **params) -> str:
    """sha1 (16 hex digits) of the modules' source files and the parameters, in a stable order."""
    h = hashlib.sha1()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:16]


def read_manifest(folder) -> dict:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_manifest(folder, fingerprint: str, **content):
    (Path(folder) / MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, **content}, indent=1))


def is_fresh(folder, fingerprint: str) -> bool:
    """The folder exists and its manifest says the current code and parameters made it."""
    return Path(folder).is_dir() and read_manifest(folder).get("fingerprint") == fingerprint

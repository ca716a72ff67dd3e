"""Splits made from the shipped ones: edited test sets and three-class REAL / EDITED / FAKE splits.

- test-real-edited: test REAL, less the photos used as sources, + 1,500 EDITED made from test REAL photos
- test-fake-edited: test FAKE + 1,500 EDITED made from other test REAL photos
- test-3class: REAL (test REAL less all 3,000 sources), EDITED (those 3,000), FAKE (test FAKE)
- train-3class: REAL (train-real-edited REAL less any photo that also appears edited), EDITED (both shipped
  edited sets, one copy per name), FAKE (train-fake-edited FAKE)
- train-edits: all of train (REAL, FAKE) + the shipped EDITED (one copy per name): `--recipe edits` trains on it,
  adding synthetic edits of its REAL photos
- train-unedited: train less the REAL photos that are sources of shipped EDITED images: a model trained here
  on synthetic edits alone is scored on the shipped EDITED images, edits another program made of photos it
  never saw
- test-families: per family of data.synthetic_edits.ALL_KINDS, 200 test REAL photos (none a source of the sets
  above) given one edit of that family, + 1,000 other test REAL photos unedited: the leave-one-family-out table
  scores a family on it (bench/edits.py)
Only test photos are sources of test edits, so nothing leaks into training. Each split has a `manifest.json`
with the fingerprint of the code and seed that made it (a changed recipe rebuilds the split) and every EDITED
image's source and recipe (edits, regions, parameters).
"""
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import edit_families, edits, synthetic_edits
from .degradations import CIFAKE_JPEG_QUALITY  # edited test images are saved with it, as every shipped file is
from .folders import code_fingerprint, is_fresh, staged_folder, write_manifest
from .images import ImageError, load_image
from .sources import default_data_root

EDITED_PER_SET = 1500
SEED = 2024
FAMILY_TEST_PER_KIND, FAMILY_TEST_REAL = 200, 1000


def _files(d: Path) -> list:
    return sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []


def _link(src: Path, dst: Path):
    try:
        os.link(src, dst)  # no copy where the filesystem allows
    except OSError:
        shutil.copy2(src, dst)


def _fingerprint(edited_per_set) -> str:
    return code_fingerprint(edits, sys.modules[__name__], seed=SEED, edited_per_set=edited_per_set)


def _write_split(root: Path, name: str, classes: dict, edited: dict, fingerprint: str, log):
    """classes: {CLASS: [(source path, file name)]}; edited: {file name: (array, manifest entry)}."""
    target = root / name
    stale = target.exists()
    manifest = {}
    with staged_folder(target, replace=True) as stage:
        for cls, items in classes.items():
            (stage / cls).mkdir(parents=True)
            for src, fname in items:
                _link(src, stage / cls / fname)
        if edited:
            (stage / "EDITED").mkdir(parents=True, exist_ok=True)
            for fname, (array, entry) in edited.items():
                Image.fromarray(array).save(stage / "EDITED" / fname, "JPEG", quality=CIFAKE_JPEG_QUALITY)
                manifest[f"EDITED/{fname}"] = entry
        write_manifest(stage, fingerprint, seed=SEED, images=manifest)
    counts = ", ".join(f"{c}={len(_files(target / c))}" for c in sorted(p.name for p in target.iterdir() if p.is_dir()))
    log(f"  {name}: {counts}" + (" (rebuilt: the edit recipe changed)" if stale else ""))


def _make_edits(test_real: Path, names, rng):
    out = {}
    for name in names:
        with Image.open(test_real / name) as im:
            img = np.asarray(im.convert("RGB"))
        edited, recipe = edits.random_edit(img, rng)
        out[Path(name).stem + ".jpg"] = (edited, {"source": f"test/REAL/{name}", "edits": recipe})
    return out


def build_derived_splits(data_root=None, verbose=True, edited_per_set=EDITED_PER_SET) -> list:
    """Build the splits above whose shipped inputs exist, unless the current code already made them;
    returns the names now there."""
    root = Path(data_root or default_data_root())
    log = (lambda msg: print(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    fingerprint = _fingerprint(edited_per_set)
    done = []
    test_real, test_fake = root / "test" / "REAL", root / "test" / "FAKE"
    test_sets = ("test-real-edited", "test-fake-edited", "test-3class")
    if test_real.is_dir() and test_fake.is_dir():
        if not all(is_fresh(root / n, fingerprint) for n in test_sets):
            real_names = _files(test_real)
            sources = _test_sources(real_names, edited_per_set)
            set_a, set_b = sources[:edited_per_set], sources[edited_per_set:]
            log(f"making {len(sources)} edited images from test REAL photos (seed {SEED}) ...")
            edits_a = _make_edits(test_real, set_a, np.random.default_rng(SEED + 1))
            edits_b = _make_edits(test_real, set_b, np.random.default_rng(SEED + 2))
            fakes = [(test_fake / n, n) for n in _files(test_fake)]
            used_a, used_all = set(set_a), set(sources)
            unused = [(test_real / n, n) for n in real_names if n not in used_a]
            _write_split(root, "test-real-edited", {"REAL": unused}, edits_a, fingerprint, log)
            _write_split(root, "test-fake-edited", {"FAKE": fakes}, edits_b, fingerprint, log)
            _write_split(root, "test-3class", {"REAL": [(test_real / n, n) for n in real_names if n not in used_all],
                                               "FAKE": fakes}, {**edits_a, **edits_b}, fingerprint, log)
        done += list(test_sets)
        done += _build_family_test(root, test_real, edited_per_set, log)
    re_dir, fe_dir = root / "train-real-edited", root / "train-fake-edited"
    if (re_dir / "REAL").is_dir() and (fe_dir / "FAKE").is_dir():
        if not is_fresh(root / "train-3class", fingerprint):
            edited = _shipped_edited(root)
            real = [(re_dir / "REAL" / n, n) for n in _files(re_dir / "REAL") if n not in edited]
            fake = [(fe_dir / "FAKE" / n, n) for n in _files(fe_dir / "FAKE")]
            edits = [(p, n) for n, p in sorted(edited.items())]
            _write_split(root, "train-3class", {"REAL": real, "FAKE": fake, "EDITED": edits}, {}, fingerprint, log)
        done.append("train-3class")
    done += _build_from_train(root, fingerprint, log)
    return done


def _test_sources(real_names, edited_per_set) -> list:
    """The test REAL photos that the edited test sets edit (seeded)."""
    rng = np.random.default_rng(SEED)
    return [real_names[i] for i in rng.permutation(len(real_names))[:2 * edited_per_set]]


def _build_family_test(root: Path, test_real: Path, edited_per_set, log) -> list:
    """test-families (see the module's docstring); fewer photos per family where test is small, none where it
    has too few."""
    fingerprint = code_fingerprint(edit_families, synthetic_edits, sys.modules[__name__], seed=SEED,
                                   edited_per_set=edited_per_set)
    if is_fresh(root / "test-families", fingerprint):
        return ["test-families"]
    real_names = _files(test_real)
    used = set(_test_sources(real_names, edited_per_set))
    free = [n for n in real_names if n not in used]
    kinds = synthetic_edits.ALL_KINDS
    per_kind = min(FAMILY_TEST_PER_KIND, len(free) // (len(kinds) + 1))
    if per_kind == 0:
        return []
    free = [free[i] for i in np.random.default_rng(SEED + 3).permutation(len(free))]
    unedited, sources = free[:min(FAMILY_TEST_REAL, len(free) - per_kind * len(kinds))], free[-per_kind * len(kinds):]
    log(f"making {len(sources)} test images edited by {len(kinds)} families (seed {SEED + 3}) ...")
    gen, edited = torch.Generator().manual_seed(SEED + 3), {}
    for k, kind in enumerate(kinds):
        names = sources[k * per_kind:(k + 1) * per_kind]
        photos = torch.from_numpy(np.stack([load_image(test_real / n)[0] for n in names])).permute(0, 3, 1, 2)
        out, masks, _ = synthetic_edits.edit_batch(photos, gen, kinds=(kind,), second_edit=0)
        for name, array, mask in zip(names, out.permute(0, 2, 3, 1).numpy(), masks):
            if mask.any():  # an edit that changed no pixel is no edit
                rows, cols = np.flatnonzero(mask.any(1).numpy()), np.flatnonzero(mask.any(0).numpy())
                region = [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
                edited[f"{kind}-{Path(name).stem}.jpg"] = (array, {"source": f"test/REAL/{name}",
                                                                   "edits": [{"edit": kind, "region": region}]})
    _write_split(root, "test-families", {"REAL": [(test_real / n, n) for n in unedited]}, edited, fingerprint, log)
    return ["test-families"]


def _shipped_edited(root: Path) -> dict:
    """{file name: path} of the shipped EDITED images, one copy per name (the two shipped sets share some)."""
    edited = {}
    for d in (root / "train-real-edited" / "EDITED", root / "train-fake-edited" / "EDITED"):
        for n in _files(d):
            edited.setdefault(n, d / n)
    return edited


def _build_from_train(root: Path, fingerprint, log) -> list:
    """train-edits and train-unedited (see the module's docstring), when train and the shipped EDITED exist."""
    real, fake = root / "train" / "REAL", root / "train" / "FAKE"
    edited = _shipped_edited(root)
    if not (real.is_dir() and fake.is_dir() and edited):
        return []
    names = ("train-edits", "train-unedited")
    if not all(is_fresh(root / n, fingerprint) for n in names):
        fakes = [(fake / n, n) for n in _files(fake)]
        reals = _files(real)
        _write_split(root, "train-edits", {"REAL": [(real / n, n) for n in reals], "FAKE": fakes,
                                           "EDITED": [(p, n) for n, p in sorted(edited.items())]}, {}, fingerprint, log)
        _write_split(root, "train-unedited", {"REAL": [(real / n, n) for n in reals if n not in edited],
                                              "FAKE": fakes}, {}, fingerprint, log)
    return list(names)


def edit_regions(folder) -> list:
    """Per image of a CachedFolder: the [x, y, w, h] of its first local edit from the split's manifest.json,
    or None (no manifest, not an edited image, or an edit over the whole image)."""
    manifest = folder.manifest.get("images", {})
    size = folder.images.shape[-1]
    out = []
    for rel in folder.files:
        edits = manifest.get(Path(rel).as_posix(), {}).get("edits", [])
        local = [e["region"] for e in edits if e.get("region") and e["region"][2:] != [size, size]]
        out.append(local[0] if local else None)
    return out


def edit_kinds(folder) -> list:
    """Per image of a CachedFolder: the kind of its first edit from the split's manifest.json (salt_and_pepper,
    blur_patch, ...), or None (no manifest, or not an edited image)."""
    manifest = folder.manifest.get("images", {})
    return [(manifest.get(Path(rel).as_posix(), {}).get("edits") or [{}])[0].get("edit") for rel in folder.files]


def edit_masks(folder):
    """The pixels an edit changed, per image of a CachedFolder -> (masks (N, H, W) bool, known (N,) bool).
    REAL and FAKE images: nothing changed. EDITED images: where they differ from their source photo by more
    than edits.DIFF_LEVEL levels (JPEG noise stays under it); the source is the manifest's `source`, else the
    same-named photo in train/REAL beside the split. `known` is False for an EDITED image whose source is
    missing or unreadable."""
    data_root = Path(folder.root).parent
    manifest = folder.manifest.get("images", {})
    n, _, h, w = folder.images.shape
    masks, known = np.zeros((n, h, w), bool), np.ones(n, bool)
    if "EDITED" not in folder.classes:
        return masks, known
    for i in np.flatnonzero(np.asarray(folder.labels) == folder.classes.index("EDITED")):
        rel = Path(folder.files[i]).as_posix()
        source = manifest.get(rel, {}).get("source") or f"train/REAL/{Path(rel).name}"
        try:
            array, _ = load_image(data_root / source, folder.image_size, folder.resize)  # seen as the split is
        except ImageError:
            known[i] = False
            continue
        masks[i] = edits.diff_mask(np.asarray(folder.images[i]).transpose(1, 2, 0), array)
    return masks, known

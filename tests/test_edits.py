"""Edited images and the splits derived from the shipped ones (REAL / EDITED / FAKE)."""
import json

import numpy as np
import pytest
from PIL import Image

from data import load_folder
from data.derived import build_derived_splits
from data.edits import (
    blur_patch,
    brightness_contrast,
    copy_patch,
    diff_mask,
    jpeg_resave,
    random_edit,
    salt_and_pepper,
    smooth_patch,
)
from data.synthetic_edits import ALL_KINDS
from tests.conftest import synthetic_image, write_split


@pytest.fixture
def photo():
    """Textured, so that blurring or smoothing a patch visibly changes it."""
    base = synthetic_image("REAL", np.random.default_rng(0)).astype(int)
    return np.clip(base + np.random.default_rng(1).integers(-40, 41, base.shape), 0, 255).astype(np.uint8)


def changed(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max(-1) > 0


def test_local_edits_stay_inside_their_region(photo):
    noisy = salt_and_pepper(photo, [4, 4, 10, 10], 0.3)
    c = changed(photo, noisy)
    assert c.any() and not c[:4].any() and not c[14:].any() and not c[:, 14:].any()
    assert set(np.unique(noisy[c])) <= {0, 255}
    for edited in (blur_patch(photo, [8, 8, 12, 12], 2.0), smooth_patch(photo, [8, 8, 12, 12]),
                   copy_patch(photo, [8, 8, 6, 6], [20, 20])):
        c = changed(photo, edited)
        assert c.any() and not c[:8].any() and not c[20:].any()


def test_random_edits_are_seeded_and_documented(photo):
    a, recipe_a = random_edit(photo, np.random.default_rng(5))
    b, recipe_b = random_edit(photo, np.random.default_rng(5))
    assert np.array_equal(a, b) and recipe_a == recipe_b and json.dumps(recipe_a)
    kinds = {random_edit(photo, np.random.default_rng(s))[1][0]["edit"] for s in range(60)}
    assert kinds == {"salt_and_pepper", "blur_patch", "smooth_patch", "copy_patch", "brightness_contrast"}
    assert jpeg_resave(photo, 50).shape == photo.shape


def test_derived_splits_have_no_leak_and_no_duplicates(tmp_path):
    root = tmp_path / "images"
    write_split(root / "test", {"REAL": 40, "FAKE": 30}, fmt="JPEG")
    write_split(root / "train-real-edited", {"REAL": 20, "EDITED": 6}, seed=1, fmt="JPEG")
    write_split(root / "train-fake-edited", {"FAKE": 20, "EDITED": 6}, seed=2, fmt="JPEG")  # same EDITED names
    built = build_derived_splits(root, verbose=False, edited_per_set=8)
    assert set(built) == {"test-real-edited", "test-fake-edited", "test-3class", "test-families", "train-3class"}

    real_edited = load_folder(root / "test-real-edited", verbose=False)
    assert real_edited.classes == ["REAL", "EDITED"] and np.bincount(real_edited.labels).tolist() == [32, 8]
    manifest = json.loads((root / "test-real-edited" / "manifest.json").read_text())["images"]
    sources = {m["source"].split("/")[-1] for m in manifest.values()}
    assert len(manifest) == 8 and all(m["source"].startswith("test/REAL/") for m in manifest.values())
    assert not sources & {p.name for p in (root / "test-real-edited" / "REAL").iterdir()}  # never both
    fake_edited = load_folder(root / "test-fake-edited", verbose=False)
    assert np.bincount(fake_edited.labels).tolist() == [8, 30]  # EDITED, FAKE

    three = load_folder(root / "test-3class", verbose=False)
    assert three.classes == ["REAL", "EDITED", "FAKE"] and np.bincount(three.labels).tolist() == [24, 16, 30]
    train3 = load_folder(root / "train-3class", verbose=False)
    # the 6 EDITED names shared by both sets are kept once, and their 6 same-named REAL photos left out
    assert np.bincount(train3.labels).tolist() == [14, 6, 20]
    # the edited image differs from its source only where the manifest says (plus JPEG noise)
    name, entry = next(iter(manifest.items()))
    src = np.asarray(Image.open(root / entry["source"]).convert("RGB")).astype(int)
    ed = np.asarray(Image.open(root / "test-real-edited" / name).convert("RGB")).astype(int)
    assert np.abs(src - ed).max() > 0
    # test-families: one photo per family here (24 photos are no source of the sets above), the other 7 unedited;
    # no photo is a source twice, nor a source of the other sets, and each image's kind is its family's
    families = load_folder(root / "test-families", verbose=False)
    fam_manifest = json.loads((root / "test-families" / "manifest.json").read_text())["images"]
    fam_sources = [m["source"].split("/")[-1] for m in fam_manifest.values()]
    assert np.bincount(families.labels).tolist() == [7, len(ALL_KINDS)]
    assert sorted(m["edits"][0]["edit"] for m in fam_manifest.values()) == sorted(ALL_KINDS)
    assert len(set(fam_sources)) == len(ALL_KINDS) and not set(fam_sources) & (sources | set(three_sources(root)))
    assert not set(fam_sources) & {p.name for p in (root / "test-families" / "REAL").iterdir()}
    # each edit's box (what the pictures outline): inside it, the saved file changed far more of the pixels than
    # outside it, where only the JPEG save moved them
    inside = outside = box_area = 0
    for name, entry in fam_manifest.items():
        x, y, w, h = entry["edits"][0]["region"]
        assert 0 <= x < x + w <= 32 and 0 <= y < y + h <= 32
        changed = diff_mask(np.asarray(Image.open(root / "test-families" / name).convert("RGB")),
                            np.asarray(Image.open(root / entry["source"]).convert("RGB")))
        in_box = changed[y:y + h, x:x + w].sum()
        inside, outside, box_area = inside + in_box, outside + changed.sum() - in_box, box_area + w * h
    assert inside / box_area > 2 * outside / (32 * 32 * len(fam_manifest) - box_area), (inside, outside, box_area)
    # building again keeps what is there
    assert build_derived_splits(root, verbose=False, edited_per_set=8) == built


def three_sources(root):
    manifest = json.loads((root / "test-3class" / "manifest.json").read_text())["images"]
    return [m["source"].split("/")[-1] for m in manifest.values()]


def test_a_changed_edit_recipe_rebuilds_the_edited_splits(tmp_path, monkeypatch):
    root = tmp_path / "images"
    write_split(root / "test", {"REAL": 12, "FAKE": 4}, fmt="JPEG")
    build_derived_splits(root, verbose=False, edited_per_set=3)
    manifest = json.loads((root / "test-real-edited" / "manifest.json").read_text())
    assert manifest["fingerprint"] and manifest["seed"] == 2024
    import data.derived
    monkeypatch.setattr(data.derived, "SEED", 99)  # the recipe changed: other sources, other edits
    build_derived_splits(root, verbose=False, edited_per_set=3)
    again = json.loads((root / "test-real-edited" / "manifest.json").read_text())
    assert again["seed"] == 99 and again["fingerprint"] != manifest["fingerprint"]
    assert again["images"] != manifest["images"]
    assert len(list((root / "test-real-edited" / "EDITED").iterdir())) == 3


def test_diff_mask_recovers_an_edit_through_jpeg_noise():
    rng = np.random.default_rng(0)
    photo = jpeg_resave(synthetic_image("REAL", rng), 95)
    edited = brightness_contrast(photo, [8, 10, 12, 6], brightness=35, contrast=1.0)
    noisy = jpeg_resave(edited, 95)  # the shipped files are JPEGs: unedited pixels move a little too
    mask = diff_mask(noisy, photo)
    truth = np.zeros((32, 32), bool)
    truth[10:16, 8:20] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8  # IoU
    assert not diff_mask(jpeg_resave(photo, 95), photo).any()  # re-encoding alone is no edit

"""The edit detector: masks that travel with their images, the map network, its training, and what users get
from it (predict.py --masks, ONNX, pixel metrics in evaluate)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, write_split
from PIL import Image

from data import load_folder
from data.batches import Batches, training_split
from data.derived import edit_masks
from data.synthetic_edits import edit_some
from models import ImageClassifier, build_model, edit_map_loss
from models.edit_map import ConstrainedConv

CLASSES = ["REAL", "EDITED", "FAKE"]


def _photos(n, seed=0):
    """Smooth random images: an edit changes pixels that were not already what it writes."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(40, 216, (n, 3, 4, 4), generator=g, dtype=torch.uint8).float()
    return torch.nn.functional.interpolate(coarse, size=32, mode="bilinear").round().to(torch.uint8)


def test_edit_some_returns_the_masks_of_exactly_the_changed_pixels():
    x = _photos(64)
    labels = torch.zeros(64, dtype=torch.long)
    out, y, m = edit_some(x, labels, CLASSES, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(m, (out != x).any(1))
    assert torch.equal(y == 1, m.flatten(1).any(1))  # EDITED exactly where something changed
    assert 10 < int((y == 1).sum()) < 54


def test_masks_move_with_their_images_through_flips_and_crops():
    # an image that is white exactly inside its mask: after any flip or shifted crop it must still be
    b = Batches(torch.zeros(32, 3, 32, 32, dtype=torch.uint8), np.zeros(32), batch_size=32, hflip=True, vflip=True,
                crop_padding=4, seed=0)
    masks = torch.zeros(32, 32, 32, dtype=torch.bool)
    for i in range(32):
        masks[i, i % 20:i % 20 + 5, (3 * i) % 25:(3 * i) % 25 + 7] = True
    x = masks.unsqueeze(1).expand(-1, 3, -1, -1).to(torch.uint8) * 255
    for seed in range(3):
        out, m = b.augment(x, torch.Generator().manual_seed(seed), masks)
        assert torch.equal(m, (out == 255).all(1))
        assert not torch.equal(m, masks)  # something moved


def test_batches_with_masks_are_seeded_and_carry_the_given_masks():
    x = _photos(40, seed=2)
    labels = np.array([0] * 20 + [1] * 10 + [2] * 10)
    given = torch.zeros(40, 32, 32, dtype=torch.bool)
    given[20:30, 5:9, 5:9] = True  # the EDITED images' own edits

    def run():
        b = Batches(x, labels, batch_size=40, seed=3, synthetic_edits=0.5, classes=CLASSES, masks=given,
                    with_masks=True)
        return next(iter(b))

    (xa, ya, ma), (xb, yb, mb) = run(), run()
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ma, mb)
    assert torch.equal(ma[20:30], given[20:30])
    assert torch.equal(ma[30:], given[30:])  # FAKE: never edited
    edited_real = ya[:20] == 1
    assert edited_real.any() and torch.equal(ma[:20].flatten(1).any(1), edited_real)


def test_an_edited_image_and_its_source_photo_are_never_split_apart(tmp_path):
    root = write_split(tmp_path / "s", {"REAL": 40, "EDITED": 20, "FAKE": 40}, seed=5)  # EDITED 0000-0019 = REAL names
    folder = load_folder(root, verbose=False)
    split = training_split(folder, 0.2, 0)
    names = [f.split("/")[-1] for f in folder.files]
    real, edited = CLASSES.index("REAL"), CLASSES.index("EDITED")
    paired = lambda idx: {names[i] for i in idx if folder.labels[i] in (real, edited)}  # noqa: E731
    val_idx = np.setdiff1d(np.arange(len(names)), split.train_idx)
    assert paired(split.train_idx).isdisjoint(paired(val_idx))


def test_edit_masks_are_the_difference_against_the_same_named_source(tmp_path):
    root = tmp_path / "images"
    write_split(root / "train", {"REAL": 4}, seed=6)
    (root / "mine" / "EDITED").mkdir(parents=True)
    (root / "mine" / "REAL").mkdir(parents=True)
    for i in range(4):
        src = np.asarray(Image.open(root / "train" / "REAL" / f"{i:04d}.png"))
        edited = src.copy()
        patch = edited[2 + i:10 + i, 3:9]
        edited[2 + i:10 + i, 3:9] = np.where(patch < 128, patch + 80, patch - 80)
        Image.fromarray(edited).save(root / "mine" / "EDITED" / f"{i:04d}.png")
    Image.fromarray(src).save(root / "mine" / "EDITED" / "no-source.png")
    Image.fromarray(src).save(root / "mine" / "REAL" / "0000.png")
    folder = load_folder(root / "mine", verbose=False)
    masks, known = edit_masks(folder)
    for i, f in enumerate(folder.files):
        expected = np.zeros((32, 32), bool)
        if f.startswith("EDITED/0"):
            k = int(f[-5])
            expected[2 + k:10 + k, 3:9] = True
        assert np.array_equal(masks[i], expected), f
        assert known[i] == (f != "EDITED/no-source.png")


@pytest.mark.parametrize("name", ["edit_map", "edit_map_srm", "edit_map_bayar", "edit_map_srm_anomaly"])
def test_map_networks_give_logits_and_a_full_resolution_map(name):
    model = ImageClassifier(build_model(name, 3), [0.5] * 3, [0.25] * 3).eval()
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    logits, edit_map = model(x, with_map=True)
    assert logits.shape == (5, 3) and edit_map.shape == (5, 1, 32, 32)
    assert torch.allclose(model(x), logits)  # the plain call is the same verdict
    model.tta = "flip"
    flip_logits, flip_map = model(x.flip(3), with_map=True)
    logits, edit_map = model(x, with_map=True)
    assert torch.allclose(flip_map.flip(3), edit_map, atol=1e-5) and torch.allclose(flip_logits, logits, atol=1e-5)


def test_the_constrained_convolution_keeps_its_constraint():
    conv = ConstrainedConv()
    flat = torch.rand(1, 3, 1, 1).expand(1, 3, 9, 9)
    assert conv(flat)[..., 2:-2, 2:-2].abs().max() < 1e-5  # predicts a flat image exactly: no residual
    spike = torch.zeros(1, 3, 9, 9)
    spike[0, 1, 4, 4] = 1.0
    assert torch.allclose(conv(spike)[..., 4, 4], -torch.ones(3))  # each kernel's centre weight is -1


def test_mask_loss_is_lower_for_the_right_map():
    masks = torch.zeros(4, 32, 32, dtype=torch.bool)
    masks[:2, 8:16, 8:16] = True
    right = (masks.float() * 12 - 6).unsqueeze(1)
    assert edit_map_loss(right, masks) < 0.05 < edit_map_loss(-right, masks)


def _textured(n, seed):
    """Smooth colours under pixel noise: blurring, smoothing, salt-and-pepper and brightness edits all show."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(60, 196, (n, 3, 4, 4), generator=g, dtype=torch.uint8).float()
    x = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") + 14 * torch.randn(n, 3, 32, 32, generator=g)
    return x.round().clamp(0, 255).to(torch.uint8)


def test_a_tiny_run_learns_a_map_that_beats_chance(tmp_path):
    from utils.inference.checkpoint import load_classifier
    from utils.inference.metrics import edit_map_metrics
    from utils.inference.scoring import run_model
    from utils.training.run import train
    (tmp_path / "t" / "REAL").mkdir(parents=True)
    for i, image in enumerate(_textured(320, seed=1)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "t" / "REAL" / f"{i:04d}.png")
    kinds = "salt_and_pepper,blur_patch,smooth_patch,brightness_contrast"  # copy_patch: texture moved onto texture
    result = train(model="edit_map", train_path=str(tmp_path / "t"), test_path="none", epochs=8, batch_size=16,
                   lr=3e-3, synthetic_edits=0.6, edit_kinds=kinds, out=str(tmp_path / "run"), progress=False,
                   device="cpu")
    model, ck = load_classifier(result["checkpoint"])
    x, _, masks = edit_some(_textured(200, seed=2), torch.zeros(200, dtype=torch.long), ck["classes"], 0.5,
                            torch.Generator().manual_seed(9), kinds.split(","))
    _, maps = run_model(model, x, with_map=True)
    pixels = edit_map_metrics(maps.numpy(), masks.numpy())
    # chance: a pixel ROC-AUC of 0.5, and an F1 near the edited share of the pixels (about 0.1)
    assert pixels["pixel_roc_auc"] > 0.8 and pixels["pixel_f1"] > 0.3, pixels
    assert result["history"][-1]["val_pixel_f1"] is not None


@pytest.fixture(scope="module")
def map_run(tmp_path_factory):
    from utils.training.run import train
    base = tmp_path_factory.mktemp("maprun")
    root = write_split(base / "t", {"REAL": 48, "FAKE": 48}, seed=8)
    result = train(model="edit_map_srm", train_path=str(root), test_path="none", epochs=2, batch_size=32,
                   synthetic_edits=0.5, out=str(base / "run"), progress=False, device="cpu")
    return result["checkpoint"], root


def _predict(*args):
    return subprocess.run([sys.executable, str(REPO / "predict.py"), *args], capture_output=True, text=True, cwd=REPO)


def test_predict_writes_one_mask_per_classified_file_without_overwriting(map_run, tmp_path):
    checkpoint, root = map_run
    masks = tmp_path / "masks"
    (root / "notes.txt").write_text("a sidecar")
    run = _predict("--checkpoint", checkpoint, "--json", "--masks", str(masks), str(root / "REAL"), str(root / "FAKE"),
                   str(root / "notes.txt"))
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    classified = [r for r in rows if "label" in r]
    assert len(classified) == 96 and set(rows[-1]) == {"path", "error"}  # a named non-image is tried, and fails
    pngs = sorted(masks.rglob("*.png"))
    assert len(pngs) == 96 == len({r["mask"] for r in classified})  # REAL/0000.png and FAKE/0000.png both kept
    for r in classified[:5]:
        with Image.open(r["mask"]) as im:
            assert im.mode == "L" and im.size == (32, 32)
            area = int((np.asarray(im) >= 128).sum())
        assert set(r["probabilities"]) == set(CLASSES) and abs(r["edit_area"] - area) <= 1
        assert (r["edit_box"] is None) == (r["edit_area"] == 0)


def test_models_without_a_map_predict_as_before_and_refuse_masks(trained_run, tmp_path):
    checkpoint = trained_run["result"]["checkpoint"]
    image = next((trained_run["test_dir"] / "REAL").iterdir())
    run = _predict("--checkpoint", checkpoint, "--json", str(image))
    row = json.loads(run.stdout)
    assert run.returncode == 0 and "edit_box" not in row and row["label"] in ("REAL", "FAKE")
    refused = _predict("--checkpoint", checkpoint, "--masks", str(tmp_path / "m"), str(image))
    assert refused.returncode == 2 and "has no edit map" in refused.stderr and not (tmp_path / "m").exists()


def test_onnx_export_carries_the_map(map_run, tmp_path):
    from utils.inference.checkpoint import load_classifier
    from utils.inference.onnx_model import OnnxClassifier, export_onnx, max_difference
    checkpoint, root = map_run
    model, ck = load_classifier(checkpoint)
    export_onnx((model, ck), tmp_path / "m.onnx")
    onnx_model = OnnxClassifier(tmp_path / "m.onnx")
    assert onnx_model.has_edit_map and max_difference((model, ck), onnx_model, n=32) < 1e-4
    rows = list(onnx_model.predict([root / "REAL"], masks_dir=tmp_path / "masks"))
    assert len(list((tmp_path / "masks").rglob("*.png"))) == len(rows) == 48


def test_evaluate_reports_pixel_metrics_against_the_sources(map_run, tmp_path):
    from utils.inference.evaluation import evaluate
    checkpoint, root = map_run
    data = tmp_path / "images"
    write_split(data / "train", {"REAL": 12}, seed=10)
    (data / "held" / "EDITED").mkdir(parents=True)
    write_split(data / "held", {"REAL": 10, "FAKE": 10}, seed=11)
    for i in range(12):
        src = np.asarray(Image.open(data / "train" / "REAL" / f"{i:04d}.png")).copy()
        src[4:12, 4:12] = 0
        Image.fromarray(src).save(data / "held" / "EDITED" / f"{i:04d}.png")
    metrics = evaluate(checkpoint, data / "held", device="cpu", verbose=False)
    e = metrics["edit_map"]
    assert e["edited_images"] == 12 and e["clean_images"] == 20
    assert 0 <= e["pixel_f1"] <= 1 and 0 <= e["false_map_rate"] <= 1


def test_gradcam_explains_the_verdict_of_a_map_network_not_its_map():
    from utils.reporting.gradcam import gradcam, last_conv_layer
    model = ImageClassifier(build_model("edit_map_srm", 3), [0.5] * 3, [0.25] * 3)
    assert last_conv_layer(model) is model.net.stages[-1][-1][0]
    heat, explained = gradcam(model, torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert heat.shape == (3, 32, 32) and len(explained) == 3

"""Runs at the images' own size: the centred crop and the tiles, the cache at any size read from disk a batch at a
time, training, evaluation and prediction of a model that crops, and nothing changed at 32 px."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from data import load_folder
from data.images import ImageError, load_image, tile_boxes
from data.rows import DiskRows
from models import build_model


def big_image(cls, width, height, rng) -> np.ndarray:
    """REAL: a smooth gradient; FAKE: the same with a fine checkerboard everywhere (so every crop shows it)."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([rng.uniform(0.2, 0.8) + 0.2 * x / width, rng.uniform(0.2, 0.8) + 0.2 * y / height,
                     np.full((height, width), rng.uniform(0.2, 0.8))], -1)
    if cls == "FAKE":
        base = base + 0.15 * (((x + y) % 2)[..., None] - 0.5)
    return (np.clip(base, 0, 1) * 255).astype(np.uint8)


def write_big_split(root, per_class, sizes=((80, 64), (64, 96)), seed=0):
    rng = np.random.default_rng(seed)
    for cls, n in per_class.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            Image.fromarray(big_image(cls, w, h, rng)).save(root / cls / f"{i:03d}.png")
    return root


def test_crop_takes_the_centred_pixels_unresampled_and_refuses_a_smaller_image(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (50, 70, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    view, resized = load_image(tmp_path / "a.png", 32, "crop")
    assert resized and np.array_equal(view, pixels[9:41, 19:51])
    shrunk, _ = load_image(tmp_path / "a.png", 32, "shrink")
    assert not np.array_equal(shrunk, view)  # the other mode resamples
    with pytest.raises(ImageError, match="is 70x50, smaller than the 64x64 crop"):
        load_image(tmp_path / "a.png", 64, "crop")


@pytest.mark.parametrize("width,height", [(100, 64), (64, 64), (257, 130), (1000, 333)])
def test_tiles_cover_every_pixel_inside_the_image(width, height):
    boxes = tile_boxes(width, height, 64, 0.125)
    covered = np.zeros((height, width), bool)
    for left, top, right, bottom in boxes:
        assert right - left == 64 and bottom - top == 64 and left >= 0 and top >= 0
        assert right <= width and bottom <= height
        covered[top:bottom, left:right] = True
    assert covered.all()


def test_disk_rows_index_like_numpy_and_read_only_what_is_asked(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (40, 3, 4, 4), np.uint8)
    data.tofile(tmp_path / "rows.u8")
    rows = DiskRows(tmp_path / "rows.u8", data.shape)
    assert rows.shape == data.shape and len(rows) == 40 and rows.nbytes == data.nbytes
    assert np.array_equal(rows[7], data[7]) and np.array_equal(rows[-1], data[-1])
    assert np.array_equal(rows[3:30:4], data[3:30:4])
    for index in ([5, 2, 2, 39, 0], np.array([1, 2, 3, 10, 11]), torch.tensor([8, 1]), data[:, 0, 0, 0] > 128):
        expected = data[np.asarray(index)]
        assert np.array_equal(rows[index], expected)
    part = rows.subset([30, 10, 20])
    assert np.array_equal(part[:], data[[30, 10, 20]]) and np.array_equal(part[[2, 0]], data[[20, 30]])
    assert np.array_equal(np.asarray(rows), data)
    with pytest.raises(IndexError):
        rows[[40]]


def test_the_cache_at_a_crop_size_holds_each_images_own_pixels_and_says_what_it_skipped(tmp_path):
    root = write_big_split(tmp_path / "big", {"REAL": 6, "FAKE": 6})
    Image.new("RGB", (40, 40)).save(root / "REAL" / "small.png")  # smaller than the crop
    folder = load_folder(root, verbose=False, image_size=48, resize="crop")
    assert folder.images.shape == (12, 3, 48, 48) and folder.image_size == 48 and folder.resize == "crop"
    assert folder.found == 13 and folder.decoded + len(folder.skipped) == folder.found
    assert folder.skipped[0][0].endswith("small.png") and "40x40, smaller than the 48x48 crop" in folder.skipped[0][1]
    i = folder.files.index("FAKE/000.png")
    expected = np.asarray(Image.open(root / "FAKE" / "000.png"))[8:56, 16:64].transpose(2, 0, 1)
    assert np.array_equal(folder.images[i], expected)
    shrunk = load_folder(root, verbose=False)  # the 32 px view is its own cache, untouched
    assert shrunk.images.shape == (13, 3, 32, 32) and not shrunk.skipped
    assert load_folder(root, verbose=False, image_size=48, resize="crop").built is False


@pytest.mark.parametrize("name", ["model_2", "model"])
def test_the_seeds_networks_take_any_size_and_are_unchanged_at_32(name):
    torch.manual_seed(0)
    net = build_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), net.head(net.features(x)))  # the seed's computation at 32 px
        assert net(torch.randn(2, 3, 96, 96)).shape == (2, 1)


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory):
    """A fullres edit-map network trained on 48 px crops of 64-96 px images."""
    from utils.training.run import train
    base = tmp_path_factory.mktemp("crop")
    train_dir = write_big_split(base / "train", {"REAL": 40, "FAKE": 40}, seed=3)
    test_dir = write_big_split(base / "test", {"REAL": 12, "FAKE": 12}, seed=4)
    result = train(model="edit_map", train_path=str(train_dir), test_path=str(test_dir), epochs=8, batch_size=16,
                   lr=3e-3, image_size=48, resize="crop", out=str(base / "out"), progress=False, device="cpu")
    return {"result": result, "base": base, "test_dir": test_dir}


def test_a_crop_run_records_its_view_and_every_reader_uses_it(crop_run):
    from utils.inference.checkpoint import image_view, load_checkpoint
    from utils.inference.evaluation import evaluate
    ck = load_checkpoint(crop_run["base"] / "out" / "checkpoint.pt")
    assert image_view(ck) == (48, "crop")
    metrics = evaluate(crop_run["base"] / "out" / "checkpoint.pt", crop_run["test_dir"], verbose=False)
    assert metrics["n"] == 24 and metrics["accuracy"] >= 0.8  # the checkerboard is in every crop


def test_evaluate_reads_a_splits_manifest_once(crop_run, monkeypatch):
    import data.cache
    from utils.inference.evaluation import evaluate
    reads = []
    real = data.cache.read_manifest
    monkeypatch.setattr(data.cache, "read_manifest", lambda root: reads.append(root) or real(root))
    metrics = evaluate(crop_run["base"] / "out" / "checkpoint.pt", crop_run["test_dir"], verbose=False)
    assert "edit_map" in metrics and len(reads) == 1  # regions, kinds and masks share one read


def test_predict_tiles_a_large_image_and_stitches_its_map_at_the_images_size(crop_run, tmp_path):
    from utils.inference.files import TILE_OVERLAP
    from utils.inference.predict import predict
    rng = np.random.default_rng(9)
    Image.fromarray(big_image("FAKE", 200, 130, rng)).save(tmp_path / "large.png")
    Image.fromarray(big_image("REAL", 48, 48, rng)).save(tmp_path / "exact.png")
    Image.new("RGB", (30, 60)).save(tmp_path / "tiny.png")
    ck = crop_run["base"] / "out" / "checkpoint.pt"
    large, exact, tiny = predict(ck, [tmp_path / n for n in ("large.png", "exact.png", "tiny.png")],
                                 masks_dir=tmp_path / "masks")
    assert large["tiles"] == len(tile_boxes(200, 130, 48, TILE_OVERLAP)) and large["image_size"] == [200, 130]
    assert large["label"] == "FAKE"
    assert Image.open(large["mask"]).size == (200, 130)  # the map is the image's, not a tile's
    box = large["edit_box"]
    assert box is None or (box[0] + box[2] <= 200 and box[1] + box[3] <= 130)
    assert "tiles" not in exact and not exact["resized"] and Image.open(exact["mask"]).size == (48, 48)
    assert "smaller than the 48x48 crop" in tiny["error"]


def test_a_training_part_larger_than_memory_trains_from_disk_exactly_as_in_memory(tmp_path, monkeypatch):
    import utils.training.training_data as training_data
    from utils.training.run import train
    train_dir = write_big_split(tmp_path / "train", {"REAL": 24, "FAKE": 24}, seed=5)
    settings = dict(model="fullres_cnn", train_path=str(train_dir), test_path="none", epochs=2, batch_size=16,
                    image_size=32, resize="crop", progress=False, device="cpu", precision="fp32")
    train(out=str(tmp_path / "memory"), **settings)
    monkeypatch.setattr(training_data, "IN_MEMORY_BYTES", 0)  # every split now stays on disk
    train(out=str(tmp_path / "disk"), **settings)
    runs = [json.loads((tmp_path / run / "history.json").read_text())["history"] for run in ("memory", "disk")]
    assert [e["train_loss"] for e in runs[0]] == [e["train_loss"] for e in runs[1]]
    assert runs[0][-1]["val_accuracy"] == runs[1][-1]["val_accuracy"]


def test_random_windows_are_each_images_own_pixels_with_its_mask_moved_alike():
    from data.batches import random_windows
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    masks = torch.rand(6, 40, 40) < 0.3
    windows, window_masks = random_windows(x, masks, 16, torch.Generator().manual_seed(0))
    assert windows.shape == (6, 3, 16, 16) and window_masks.shape == (6, 16, 16)
    places = []
    for i in range(6):  # each window is a block of its own image, unresampled, and its mask the same block
        found = [(t, l) for t in range(25) for l in range(25) if torch.equal(x[i, :, t:t + 16, l:l + 16], windows[i])]
        assert found and torch.equal(masks[i, found[0][0]:found[0][0] + 16, found[0][1]:found[0][1] + 16],
                                     window_masks[i])
        places.append(found[0])
    assert len(set(places)) > 1  # each image at its own place
    assert random_windows(x, masks, 40, None)[0] is x  # a window the size of the image is the image


def test_a_run_on_windows_trains_on_them_and_judges_the_whole_view(tmp_path, monkeypatch):
    import data.batches
    from utils.inference.checkpoint import image_view, load_checkpoint
    from utils.inference.evaluation import evaluate
    from utils.training.config import make_config
    from utils.training.run import train
    with pytest.raises(ValueError, match="training windows of 64 px"):
        make_config(image_size=48, resize="crop", train_crop=64)
    seen = []  # (the side of the views cut, the side of the windows) per training batch
    real = data.batches.random_windows

    def spy(x, masks, size, gen):
        windows, window_masks = real(x, masks, size, gen)
        seen.append((x.shape[-1], windows.shape[-1]))
        return windows, window_masks

    monkeypatch.setattr(data.batches, "random_windows", spy)
    train_dir = write_big_split(tmp_path / "train", {"REAL": 24, "FAKE": 24}, seed=6)
    train(model="fullres_cnn", train_path=str(train_dir), test_path="none", epochs=6, batch_size=8, lr=3e-3,
          image_size=48, resize="crop", train_crop=24, val_fraction=0.25, out=str(tmp_path / "out"), progress=False,
          device="cpu", precision="fp32")
    assert len(seen) == 6 * 5 and set(seen) == {(48, 24)}  # every training batch: 24 px windows of 48 px views
    ck = load_checkpoint(tmp_path / "out" / "checkpoint.pt")
    assert image_view(ck) == (48, "crop") and ck["config"]["train_crop"] == 24
    metrics = evaluate(tmp_path / "out" / "checkpoint.pt", train_dir, verbose=False)  # the whole 48 px views
    assert metrics["n"] == 48 and metrics["roc_auc"] >= 0.9  # the checkerboard is in every window


def test_the_page_shows_a_tiled_picture_whole_with_its_stitched_map(crop_run):
    import io

    from web.server import create_app
    buffer = io.BytesIO()
    Image.fromarray(big_image("FAKE", 200, 130, np.random.default_rng(3))).save(buffer, "PNG")
    client = create_app(crop_run["base"], weights_dir=crop_run["base"] / "no-weights-here").test_client()
    page = client.post("/", data={"images": [(io.BytesIO(buffer.getvalue()), "large.png")], "detector": "run:out"},
                       content_type="multipart/form-data").data.decode()
    tiles = len(tile_boxes(200, 130, 48, 0.125))
    assert f"Scored at its own resolution as {tiles} tiles of 48x48" in page
    assert 'class="photo"' in page and "The picture (200x130)" in page and "Grad-CAM" not in page

import io

import numpy as np
import pytest
from PIL import Image

from data.images import ImageError, load_image


def test_plain_32px_rgb_is_not_resized(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    out, resized = load_image(tmp_path / "a.png")
    assert not resized and out.shape == (32, 32, 3) and np.array_equal(out, a)


def test_large_non_square_is_center_cropped_and_resized(tmp_path):
    a = np.zeros((100, 300, 3), dtype=np.uint8)
    a[:, 100:200] = 255  # the center square is white, the sides black
    Image.fromarray(a).save(tmp_path / "wide.png")
    out, resized = load_image(tmp_path / "wide.png")
    assert resized and out.shape == (32, 32, 3)
    assert out[:, 2:-2].min() > 250 and out.min() > 200  # only the kernel's edge touches the black sides


def test_16bit_greyscale_keeps_its_range(tmp_path):
    a = np.full((32, 32), 65535, dtype=np.uint16)
    a[:, :16] = 32768
    Image.fromarray(a).save(tmp_path / "g16.png")
    out, _ = load_image(tmp_path / "g16.png")
    assert out[0, 20, 0] == 255 and 125 <= out[0, 0, 0] <= 130  # not clipped to white


def test_palette_and_alpha_images(tmp_path):
    Image.new("P", (32, 32), 3).save(tmp_path / "p.png")
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red -> white background
    rgba.save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "p.png")[0].shape == (32, 32, 3)
    assert load_image(tmp_path / "rgba.png")[0][0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((32, 64, 3), dtype=np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    with Image.open(tmp_path / "rot.jpg") as raw:
        assert raw.size == (64, 32)
    out, resized = load_image(tmp_path / "rot.jpg")
    assert resized and out.shape == (32, 32, 3)


def test_animation_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    out, _ = load_image(tmp_path / "anim.gif")
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


@pytest.mark.parametrize("make,reason", [
    (lambda p: p.write_bytes(b"this is not an image"), "not an image"),
    (lambda p: p.write_bytes(b""), "not an image"),
    (lambda p: p.mkdir(), "directory"),
])
def test_unreadable_files_give_a_reason(tmp_path, make, reason):
    p = tmp_path / "x.jpg"
    make(p)
    with pytest.raises(ImageError, match=reason):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[:300])
    with pytest.raises(ImageError, match="cannot decode|truncated"):
        load_image(tmp_path / "t.jpg")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)  # 10,000 pixels is then a 'bomb' (> 2x the limit)
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # between 1x and 2x: PIL only warns; we still refuse
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(tmp_path / "bomb.png")


def test_views_of_other_boxes_share_the_decoding(tmp_path):
    """predict.py's view is the centred square; the real-photo bench's tiles go through the same resize."""
    from data.images import open_rgb, square_view
    from data.real_photos import tiles
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 500, 3), np.uint8)).save(tmp_path / "wide.png")
    im = open_rgb(tmp_path / "wide.png")
    assert tiles(500, 300, 1.0) == [(100, 0, 400, 300)]
    assert np.array_equal(square_view(im, tiles(500, 300, 1.0)[0]), load_image(tmp_path / "wide.png")[0])
    quarters = tiles(500, 300, 0.25, most=16)
    assert len(quarters) == 16 and all(r - l == 75 and b - t == 75 for l, t, r, b in quarters)
    crop = tiles(500, 300, 32 / 300)[0]
    assert np.array_equal(square_view(im, crop), np.asarray(im)[crop[1]:crop[3], crop[0]:crop[2]])

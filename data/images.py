"""Decoding one image file into the model's input: size x size RGB uint8 (32 unless a run chose another), the
same path for training and prediction.

Handles what real folders contain: EXIF orientation, 16-bit and palette images, alpha, animations (first
frame), and refuses decompression bombs, truncated files and non-images with an `ImageError` whose message says
what is wrong. An image of another size is brought to the run's size in one of two ways (`RESIZE_MODES`):
- "shrink": the centred square, resized (antialiased). CIFAKE's 32 px detectors, and what they do to a photo;
- "crop": the centred size x size crop at the image's own resolution, never resampled: the traces that tell a
  generated or edited image apart (noise residuals, resampling and compression grids) live in those pixels.
  An image smaller than the crop is refused, with its size in the message (padding would invent pixels).
"""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 32
RESIZE_MODES = ("shrink", "crop")
MAX_PIXELS = 64_000_000  # far above any photo; stops a decompression bomb before it is decoded
MAX_FILE_BYTES = 50_000_000  # far above a phone photo (5-15 MB); a larger file is refused before it is read
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(Exception):
    """A file that cannot be turned into an image; the message is the reason."""


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit greyscale: PIL's convert("RGB") clips at 255, so rescale by the type's range instead.
        a = np.asarray(im).astype(np.float64)
        scale = 65535.0 if (im.mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        if im.mode == "F":
            scale = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        a = np.clip(a / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im.convert("RGBA")).convert("RGB")
    return im.convert("RGB")


def open_rgb(path) -> Image.Image:
    """The whole image as RGB (first frame, EXIF orientation applied), within the file and pixel limits.
    Raises ImageError with the reason."""
    path = Path(path)
    if path.is_dir():
        raise ImageError("is a directory, not an image file")
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise ImageError(f"refused: the file is {path.stat().st_size / 1e6:.1f} MB, over the "
                         f"{MAX_FILE_BYTES / 1e6:.0f} MB limit for one image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)  # first frame of an animation
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_rgb(im)
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except UnidentifiedImageError:
        raise ImageError("not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"refused as a possible decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"cannot decode: {e}") from None


def center_square(width, height) -> tuple:
    """The box (left, top, right, bottom) of the largest centred square."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_view(im: Image.Image, box=None, size: int = IMAGE_SIZE) -> np.ndarray:
    """The model's view of `box` (default: the centred square) of an RGB image: uint8 (size, size, 3).
    PIL's bicubic resize widens its kernel when shrinking, i.e. it is antialiased."""
    if im.size != (size, size) or box is not None:
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=box or center_square(*im.size))
    return np.asarray(im, dtype=np.uint8)


def crop_box(width, height, size) -> tuple:
    """The box (left, top, right, bottom) of the centred size x size crop; an image smaller than that is an
    ImageError."""
    if width < size or height < size:
        raise ImageError(f"is {width}x{height}, smaller than the {size}x{size} crop this run takes (a run at the "
                         "images' own size never enlarges one; use a smaller --image-size or --resize shrink)")
    left, top = (width - size) // 2, (height - size) // 2
    return left, top, left + size, top + size


def default_resize(size: int) -> str:
    """How a run at view size `size` brings an image to it when no mode is named: CIFAKE's 32 px shrinks (the
    shipped detectors' view); any other size crops, keeping the image's own pixels, where a trace of how it was
    made (a resampling, a generator's fine detail) survives."""
    return "shrink" if size == IMAGE_SIZE else "crop"


def model_view(im: Image.Image, size: int = IMAGE_SIZE, resize: str = "shrink") -> np.ndarray:
    """The model's view of a whole RGB image: uint8 (size, size, 3), by `resize` (see RESIZE_MODES)."""
    if resize == "crop":
        return np.asarray(im.crop(crop_box(*im.size, size)), dtype=np.uint8)
    if resize != "shrink":
        raise ValueError(f"unknown resize mode {resize!r}; use one of {', '.join(RESIZE_MODES)}")
    return square_view(im, size=size)


def load_image(path, size: int = IMAGE_SIZE, resize: str = "shrink"):
    """-> (uint8 array (size, size, 3), resized: whether the file was another size). Raises ImageError with the
    reason."""
    im = open_rgb(path)
    return model_view(im, size, resize), im.size != (size, size)


def tile_boxes(width, height, size, overlap) -> list:
    """Boxes (left, top, right, bottom) of size x size tiles covering a whole image, neighbours overlapping by
    about `overlap` of a tile (the last row and column are moved in to end at the image's edge, so every pixel
    is covered and no tile pads). An image smaller than a tile is an ImageError (see crop_box)."""
    crop_box(width, height, size)
    step = max(1, int(size * (1 - overlap)))

    def starts(extent):
        n = -(-(extent - size) // step) + 1  # tiles to reach the far edge
        return sorted({min(i * step, extent - size) for i in range(n)})
    return [(x, y, x + size, y + size) for y in starts(height) for x in starts(width)]

"""Decoding one image file into the model's input: 32x32 RGB uint8, the same path for training and prediction.

Handles what real folders contain: EXIF orientation, 16-bit and palette images, alpha, animations (first
frame), other sizes (center square crop, then an antialiased resize), and refuses decompression bombs,
truncated files and non-images with an `ImageError` whose message says what is wrong.
"""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 32
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


def load_image(path, size: int = IMAGE_SIZE):
    """-> (uint8 array (size, size, 3), resized: bool): the centred square, resized to size x size. Raises
    ImageError with the reason."""
    im = open_rgb(path)
    return square_view(im, size=size), im.size != (size, size)

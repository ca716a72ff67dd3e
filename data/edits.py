"""Local edits that turn a real photo into an EDITED one, matching the shipped EDITED images.

Diffing each shipped EDITED image against its same-named source in train/REAL shows four kinds of edit:
salt-and-pepper noise (often over the whole image), blurred patches, smooth inpainted-looking patches, and
patches copied from elsewhere in the image; the median image has ~10% of its pixels changed by more than 10
levels. A social-media edit is added: a brightened/contrasted region. The shipped EDITED images are JPEGs at
CIFAKE's quality 75, like every REAL and FAKE file, so an edited image is saved exactly so (data.derived) and no
step here re-encodes it: a compression history of its own would be a label the detector could read.
Every function takes and returns uint8 (H, W, 3) arrays; `random_edit` draws one seeded recipe.
"""
import io

import numpy as np
from PIL import Image, ImageFilter


def salt_and_pepper(img, region, amount):
    """Set a fraction `amount` of the region's pixels to black or white (the shipped edits' commonest kind)."""
    out = img.copy()
    x, y, w, h = region
    rng = np.random.default_rng(int(amount * 1e6) + x * 31 + y)
    mask = rng.random((h, w)) < amount
    out[y:y + h, x:x + w][mask] = np.where(rng.random((mask.sum(), 1)) < 0.5, 0, 255).astype(np.uint8)
    return out


def blur_patch(img, region, radius):
    """Gaussian-blur a rectangle (a softened detail)."""
    x, y, w, h = region
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))
    out = img.copy()
    out[y:y + h, x:x + w] = blurred[y:y + h, x:x + w]
    return out


def smooth_patch(img, region):
    """Replace a rectangle by a smooth fill interpolated from its border (an inpainted-looking patch)."""
    x, y, w, h = region
    out = img.copy().astype(np.float64)
    top, bottom = out[max(y - 1, 0), x:x + w], out[min(y + h, img.shape[0] - 1), x:x + w]
    t = np.linspace(0, 1, h)[:, None, None]
    out[y:y + h, x:x + w] = (1 - t) * top[None] + t * bottom[None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def copy_patch(img, region, source_xy):
    """Copy a same-sized patch from elsewhere in the image over the rectangle (clone stamp)."""
    x, y, w, h = region
    sx, sy = source_xy
    out = img.copy()
    out[y:y + h, x:x + w] = img[sy:sy + h, sx:sx + w]
    return out


def brightness_contrast(img, region, brightness, contrast):
    """Brighten and stretch the contrast of a rectangle (a local 'enhance' filter)."""
    x, y, w, h = region
    out = img.astype(np.float64)
    patch = out[y:y + h, x:x + w]
    out[y:y + h, x:x + w] = (patch - patch.mean()) * contrast + patch.mean() + brightness
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def jpeg_resave(img, quality):
    """Re-save the whole image as JPEG at `quality` (what sharing on social media does)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(buf).convert("RGB"))


# Pixels of a shipped EDITED image that differ from its source by more than this many levels (in any channel)
# count as edited. Over 300 shipped pairs, the median pixel differs by 0 levels and the 75th percentile by 3
# (JPEG re-encoding noise), while the edited pixels differ by tens of levels.
DIFF_LEVEL = 10


def diff_mask(edited, source, level=DIFF_LEVEL):
    """(H, W) bool: where uint8 (H, W, 3) `edited` differs from its `source` by more than `level` levels: the
    edit mask of a shipped EDITED image, from its same-named source photo in train/REAL."""
    return (np.abs(np.asarray(edited, dtype=np.int16) - np.asarray(source, dtype=np.int16)) > level).any(2)


def _region(rng, size, lo=6, hi=16):
    w, h = (int(v) for v in rng.integers(lo, hi + 1, 2))
    return [int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1)), w, h]


def random_edit(img, rng):
    """-> (edited image, recipe): one local edit drawn with the shipped mix of kinds (salt-and-pepper ~40%,
    blur, smooth and copy patches ~15% each, brightness/contrast ~15%).
    The recipe (kinds, regions as [x, y, w, h], parameters) is plain JSON."""
    size = img.shape[0]
    kind = rng.choice(["salt_and_pepper", "blur_patch", "smooth_patch", "copy_patch", "brightness_contrast"],
                      p=[0.4, 0.15, 0.15, 0.15, 0.15])
    if kind == "salt_and_pepper":
        region = [0, 0, size, size] if rng.random() < 0.7 else _region(rng, size, 10, 24)
        params = {"amount": round(float(rng.uniform(0.02, 0.08)), 3)}
        out = salt_and_pepper(img, region, **params)
    elif kind == "blur_patch":
        region, params = _region(rng, size), {"radius": round(float(rng.uniform(1.0, 2.5)), 2)}
        out = blur_patch(img, region, **params)
    elif kind == "smooth_patch":
        region, params = _region(rng, size, 4, 12), {}
        out = smooth_patch(img, region)
    elif kind == "copy_patch":
        region = _region(rng, size, 5, 12)
        params = {"source_xy": [int(rng.integers(0, size - region[2] + 1)), int(rng.integers(0, size - region[3] + 1))]}
        out = copy_patch(img, region, **params)
    else:
        region = _region(rng, size)
        params = {"brightness": round(float(rng.uniform(-40, 40)), 1),
                  "contrast": round(float(rng.uniform(0.6, 1.6)), 2)}
        out = brightness_contrast(img, region, **params)
    return out, [{"edit": str(kind), "region": region, **params}]

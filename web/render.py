"""Pictures for the page, as PNG data URIs (nothing is written to disk): the 32x32 view the model saw, scaled
up without smoothing, and the same view under a Grad-CAM heatmap or an edit map."""
import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

SCALE = 8  # 32x32 -> 256x256, every model pixel an 8x8 block: the page shows what the model saw, not a blur


def upscale(image, factor=SCALE) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, C) array."""
    return np.repeat(np.repeat(np.asarray(image), factor, axis=0), factor, axis=1)


def heat_overlay(view, heat, alpha=0.45) -> np.ndarray:
    """The view under a heatmap in 0..1 (jet: blue cold, red hot), as uint8 RGB."""
    colours = colormaps["jet"](np.clip(np.asarray(heat), 0, 1))[..., :3] * 255
    return (np.asarray(view, dtype=np.float64) * (1 - alpha) + colours * alpha).astype(np.uint8)


def map_overlay(view, edit_map, colour=(255, 0, 255)) -> np.ndarray:
    """The view with every pixel painted magenta in proportion to the probability that it was edited."""
    weight = np.clip(np.asarray(edit_map), 0, 1)[..., None] * 0.8
    return (np.asarray(view, dtype=np.float64) * (1 - weight) + np.array(colour) * weight).astype(np.uint8)


def png_uri(image) -> str:
    """An (H, W, 3) uint8 array as a data: URI, enlarged by SCALE."""
    buffer = io.BytesIO()
    Image.fromarray(upscale(np.asarray(image, dtype=np.uint8))).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

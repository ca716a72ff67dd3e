"""Real photographs from other sources than CIFAR, for measuring false alarms only (never for training or for
choosing a threshold): sample photos that install with registry packages.

- scikit-learn: china.jpg, flower.jpg (sklearn/datasets/images; a project requirement, always there)
- matplotlib: grace_hopper.jpg (mpl-data/sample_data; a project requirement)
- scikit-image: astronaut, chelsea, coffee, motorcycle_left, rocket (`pip install scikit-image`)
- Debian's mate-backgrounds: the 12 nature photographs in /usr/share/backgrounds/mate/nature
  (`apt-get install mate-backgrounds`; its other wallpapers, and Debian's other wallpaper packages, are
  drawings and renders, so they are left out)
"""
import importlib.util
from pathlib import Path

from .images import center_square

SOURCES = {  # name -> (how to install it, how to find its photos: a package's folder and names, or a glob)
    "scikit-learn": ("a requirement", ("sklearn", "datasets/images", ["china.jpg", "flower.jpg"])),
    "matplotlib": ("a requirement", ("matplotlib", "mpl-data/sample_data", ["grace_hopper.jpg"])),
    "scikit-image": ("pip install scikit-image", ("skimage", "data", ["astronaut.png", "chelsea.png", "coffee.png",
                                                                       "motorcycle_left.png", "rocket.jpg"])),
    "mate-backgrounds": ("apt-get install mate-backgrounds", "/usr/share/backgrounds/mate/nature/*.jpg"),
}


def _package_dir(module) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin).parent if spec and spec.origin else None


def real_photo_files():
    """-> ([(source, path)] of the photos found, {source: how to install it} for the sources absent)."""
    found, missing = [], {}
    for source, (install, where) in SOURCES.items():
        if isinstance(where, str):
            paths = sorted(Path("/").glob(where.lstrip("/")))
        else:
            module, sub, names = where
            folder = _package_dir(module)
            paths = [folder / sub / n for n in names if folder and (folder / sub / n).is_file()]
        if paths:
            found += [(source, p) for p in paths]
        else:
            missing[source] = install
    return found, missing


def tiles(width, height, fraction, most=16):
    """Square boxes whose side is `fraction` of the image's shorter side (at least 32 pixels), laid on a grid
    across the whole image; at most `most`, evenly spaced through the grid. fraction 1: the centred square,
    which is the view predict.py takes."""
    if fraction >= 1:
        return [center_square(width, height)]
    side = max(32, int(min(width, height) * fraction))
    boxes = [(x, y, x + side, y + side) for y in range(0, height - side + 1, side)
             for x in range(0, width - side + 1, side)]
    step = max(1, len(boxes) / most)
    return [boxes[int(i * step)] for i in range(min(most, len(boxes)))]

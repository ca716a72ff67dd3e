"""Real photographs from other sources than CIFAR, for measuring false alarms only (never for training or for
choosing a threshold): the photographs that install with registry packages, each chosen by eye as a camera
photograph (the wallpaper packages' drawings and renders are left out).

- scikit-learn: china.jpg, flower.jpg (sklearn/datasets/images; a project requirement, always there)
- matplotlib: grace_hopper.jpg (mpl-data/sample_data; a project requirement)
- scikit-image: 15 photographs of skimage/data (`pip install scikit-image`)
- Debian's mate-backgrounds: the 12 nature photographs in /usr/share/backgrounds/mate/nature
- Debian's lomiri-wallpapers-16.04 and -20.04: 14 photographs in /usr/share/backgrounds (Ubuntu's wallpapers;
  Debian 12's ukui-wallpapers, once listed here, ships drawings under other names)
- Debian's plasma-workspace-wallpapers: 11 photographs in /usr/share/wallpapers
(`make bench-deps` installs them all: `pip install scikit-image`, `apt-get install mate-backgrounds
lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers`)
The photographs a detector trains on from elsewhere (data/other_photos.py, Debian's opencv-doc) are never listed here.
"""
import importlib.util
from pathlib import Path

from .images import center_square

_PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "Kite", "OneStandsOut",
           "Path", "Volna", "summer_1am"]
SOURCES = {  # name -> (how to install it, (a Python package or an absolute folder, sub-folder, file names))
    "scikit-learn": ("a requirement", ("sklearn", "datasets/images", ["china.jpg", "flower.jpg"])),
    "matplotlib": ("a requirement", ("matplotlib", "mpl-data/sample_data", ["grace_hopper.jpg"])),
    "scikit-image": ("pip install scikit-image", ("skimage", "data", [
        "astronaut.png", "brick.png", "camera.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png",
        "grass.png", "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
        "page.png", "rocket.jpg"])),
    "mate-backgrounds": ("apt-get install mate-backgrounds", ("/usr/share/backgrounds/mate", "nature", [
        "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg", "LadyBird.jpg",
        "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg"])),
    "lomiri-wallpapers": ("apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04", (
        "/usr/share/backgrounds", "", [
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
        "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
        "aitzgorri_by_Aitzol_Berasategi.jpg", "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
        "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg"])),
    "plasma-workspace-wallpapers": ("apt-get install plasma-workspace-wallpapers", (
        "/usr/share/wallpapers", "", [f"{name}/contents/images" for name in _PLASMA])),  # a folder: its largest
}


def _package_dir(module) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin).parent if spec and spec.origin else None


def _largest(path: Path) -> Path:
    """A file, or the largest file of a folder (a wallpaper's several sizes of one photograph)."""
    return max((p for p in path.iterdir() if p.is_file()), key=lambda p: p.stat().st_size) if path.is_dir() else path


def real_photo_files():
    """-> ([(source, path)] of the photos found, {source: {"install": how, "files": [names not found]}} for every
    source with a photo missing): a bench says how many of its photos it could not find, and how to get them."""
    found, missing = [], {}
    for source, (install, (where, sub, names)) in SOURCES.items():
        folder = Path(where) if where.startswith("/") else _package_dir(where)
        there = [n for n in names if folder and (folder / sub / n).exists()]
        found += [(source, _largest(folder / sub / n)) for n in there]
        if len(there) < len(names):
            missing[source] = {"install": install, "files": [n for n in names if n not in there]}
    return found, missing


def found_photos(log) -> list:
    """-> [(source, path)] of the photos found; `log(line)` is told, per source, how many it could not find
    and how to install them."""
    found, missing = real_photo_files()
    for source, what in missing.items():
        log(f"# {source}: {len(what['files'])} photo(s) not found ({what['install']})")
    return found


def listed_photos() -> int:
    return sum(len(names) for _, (_, _, names) in SOURCES.values())


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

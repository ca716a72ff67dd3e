"""Label-neutral changes of whole images (what a file meets in the wild: re-encoding, resampling, filters, tone
curves, noise), in one table read by all three of their uses: robust-training augmentation of whole batches
(`robust_augment`, from data.batches, for every class alike), the fixed perturbed test copies of the robustness
table (`TEST_COPIES`, written by data.perturbed) and the bias table of bench/bias.py (`BIAS_CHANGES`). Only the
kinds with a `train_range` are drawn in training; the others (WebP, palette PNG, enlargement, sharpening,
saturation) are kept aside, so the bias table measures changes the detector never saw. A run may opt into some
of them (`robust_extra`, drawn over their `opt_in_range`); the bias table then marks them trained for it.
Each works on uint8 (N, 3, H, W) tensors.
"""
import io
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .lazy import TF

CIFAKE_JPEG_QUALITY = 75  # every shipped REAL, FAKE and EDITED file's quantisation tables


def jpeg(x, quality):
    """Encode and decode as JPEG at `quality` (libjpeg, through torchvision; CPU)."""
    return TF.jpeg(x.cpu(), int(quality)).to(x.device)


def down_up(x, size):
    """Down to size x size with antialiasing, back up bilinearly: what a thumbnail or a resized upload loses."""
    h, w = x.shape[-2:]
    size = int(size)
    small = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def blur(x, sigma):
    return TF.gaussian_blur(x, kernel_size=[3, 3], sigma=[float(sigma)] * 2)


def noise(x, std, gen=None):
    n = torch.randn(x.shape, generator=gen).to(x.device) * std
    return (x.float() + n).round().clamp(0, 255).to(torch.uint8)


def mirror(x, _strength=None):
    return x.flip(-1)


def gamma(x, g):
    """A global tone curve: out = 255 (in / 255) ** g (g < 1 brightens the shadows, g > 1 darkens them)."""
    return (255.0 * (x.float() / 255.0) ** float(g)).round().clamp(0, 255).to(torch.uint8)


def saturation(x, factor):
    """Colours pushed away from (factor > 1) or towards (< 1) their grey: a phone's 'vivid' filter."""
    return TF.adjust_saturation(x, float(factor))


def sharpen(x, amount):
    """An unsharp mask of the whole image (3x3 Gaussian, sigma 1): what phone cameras apply by default."""
    soft = TF.gaussian_blur(x.float(), kernel_size=[3, 3], sigma=[1.0, 1.0])
    return (x.float() + float(amount) * (x.float() - soft)).round().clamp(0, 255).to(torch.uint8)


def enlarge_shrink(x, factor):
    """Enlarged `factor` times (bicubic) and shrunk back with antialiasing: an upscaled copy saved at its old size."""
    h, w = x.shape[-2:]
    big = F.interpolate(x.float(), scale_factor=float(factor), mode="bicubic", align_corners=False)
    return F.interpolate(big, size=(h, w), mode="bilinear", antialias=True,
                         align_corners=False).round().clamp(0, 255).to(torch.uint8)


def _through_pil(x, save):
    """Each image written to memory by `save(PIL image, buffer)` and read back as RGB."""
    out = []
    for a in x.cpu().permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        save(Image.fromarray(a), buf)
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(x.device)


def webp(x, quality):
    return _through_pil(x, lambda im, buf: im.save(buf, "WEBP", quality=int(quality)))


def palette_png(x, colours):
    """Saved as a palette PNG of at most `colours` colours (adaptive palette, no dithering)."""
    return _through_pil(x, lambda im, buf: im.quantize(int(colours), dither=Image.Dither.NONE).save(buf, "PNG"))


@dataclass(frozen=True)
class Degradation:
    about: str                    # what it does at a strength, e.g. "re-saved as JPEG quality {}"
    apply: Callable               # (uint8 images, strength, generator) -> uint8 images
    train_range: Optional[tuple] = None  # (low, high) strengths drawn by robust training; None: not trained on
    integer: bool = False         # strengths are whole numbers (JPEG quality, pixels)
    opt_in_range: Optional[tuple] = None  # kept aside unless a run names the kind in `robust_extra`


    def describe(self, strength) -> str:
        return self.about.format(f"{strength:g}" if strength is not None else "")


DEGRADATIONS = {
    # quality 50-95 in training; the shipped test JPEGs already carry compression
    "jpeg": Degradation("re-saved as JPEG quality {}", lambda x, s, g: jpeg(x, s), (50, 95), integer=True),
    # 16-22 px in training: sizes near 32 barely change an image, and 16-22 scored better than 16-28 on both
    # clean and resized validation images (docs/experiments.md)
    # (sizes of a 32 px image: a larger one goes down to the same share of its side)
    "resize": Degradation("down to {0}x{0} and back up", lambda x, s, g: down_up(x, round(s * x.shape[-1] / 32)),
                          (16, 22), integer=True),
    "blur": Degradation("Gaussian blur, sigma {}", lambda x, s, g: blur(x, s), (0.3, 1.0)),
    # a camera's sensor noise is no edit (the seed's salt-and-pepper is): trained, so it is not read as one
    "noise": Degradation("Gaussian noise, std {} levels", lambda x, s, g: noise(x, s, g), (1.0, 8.0)),
    "gamma": Degradation("tone curve, gamma {}", lambda x, s, g: gamma(x, s), (0.75, 1.35)),
    # CIFAKE's own encoding, drawn for every class after any edit: an edited patch then has the quality-75 history
    # the rest of the image has, as in the edited test splits (near a no-op on REAL and FAKE, which carry it)
    "cifake_jpeg": Degradation("re-saved as JPEG quality {} (CIFAKE's)", lambda x, s, g: jpeg(x, s),
                               (CIFAKE_JPEG_QUALITY, CIFAKE_JPEG_QUALITY), integer=True),
    "flip": Degradation("mirrored left-right", lambda x, s, g: mirror(x)),
    # kept aside: never drawn in training, so the bias table shows what a change the detector never saw does
    # (opt-in ranges: the strengths a run that names the kind in `robust_extra` draws)
    "webp": Degradation("re-saved as WebP quality {}", lambda x, s, g: webp(x, s), integer=True,
                        opt_in_range=(50, 95)),
    "palette": Degradation("saved as a palette PNG of {} colours", lambda x, s, g: palette_png(x, s), integer=True,
                           opt_in_range=(48, 256)),
    "enlarge": Degradation("enlarged {}x and shrunk back", lambda x, s, g: enlarge_shrink(x, s)),
    "sharpen": Degradation("unsharp mask, amount {}", lambda x, s, g: sharpen(x, s), opt_in_range=(0.3, 1.5)),
    "saturation": Degradation("saturation x{}", lambda x, s, g: saturation(x, s)),
}

# the robustness table's fixed copies of a split: <split>-<name> = one degradation at one strength
TEST_COPIES = {
    "jpeg75": ("jpeg", 75),
    "jpeg50": ("jpeg", 50),
    "resize": ("resize", 16),
    "blur": ("blur", 0.8),
    "noise": ("noise", 8.0),
    "flip": ("flip", None),
}


# bench/bias.py's table of label-neutral changes: name -> (kind, strength); a REAL or FAKE image called EDITED
# after one of them is a false edit alarm. Some strengths lie outside the trained ranges on purpose.
BIAS_CHANGES = {
    "jpeg90": ("jpeg", 90), "jpeg60": ("jpeg", 60), "jpeg30": ("jpeg", 30),
    "webp80": ("webp", 80), "webp50": ("webp", 50), "palette256": ("palette", 256), "palette64": ("palette", 64),
    "down_up24": ("resize", 24), "down_up16": ("resize", 16),
    "enlarge2": ("enlarge", 2), "enlarge3.5": ("enlarge", 3.5),
    "blur0.6": ("blur", 0.6), "sharpen1": ("sharpen", 1.0), "noise3": ("noise", 3.0), "noise10": ("noise", 10.0),
    "gamma0.8": ("gamma", 0.8), "gamma1.25": ("gamma", 1.25), "saturation1.3": ("saturation", 1.3),
    "saturation0.7": ("saturation", 0.7), "flip": ("flip", None),
}


def training_range(kind: str, extra=()):
    """The strengths robust training draws of `kind`, given a run's opted-in kinds `extra`; None: not drawn."""
    d = DEGRADATIONS[kind]
    return d.train_range or (d.opt_in_range if kind in extra else None)


def opt_in_kinds(text) -> tuple:
    """'sharpen,webp' -> ('sharpen', 'webp'), each checked to be a kind a run may opt into."""
    kinds = tuple(k.strip() for k in (text or "").split(",") if k.strip())
    optional = [k for k, d in DEGRADATIONS.items() if d.opt_in_range]
    bad = [k for k in kinds if k not in optional]
    if bad:
        raise ValueError(f"robust_extra: {', '.join(bad)} cannot be opted into; these can: {', '.join(optional)}")
    return kinds


def is_trained(name: str, table: dict = BIAS_CHANGES, extra=()) -> bool:
    """Whether change `name` of `table` is of a kind that robust training draws from (at any strength), for a
    run that opted into the kinds `extra`."""
    return training_range(table[name][0], extra) is not None


def apply_change(table: dict, name: str, x, gen=None):
    """Change `name` of `table` (TEST_COPIES or BIAS_CHANGES) applied to uint8 images x."""
    kind, strength = table[name]
    return DEGRADATIONS[kind].apply(x, strength, gen)


def describe_change(table: dict, name: str) -> str:
    kind, strength = table[name]
    return DEGRADATIONS[kind].describe(strength)


def describe_copy(name: str) -> str:
    return describe_change(TEST_COPIES, name)


def degrade_copy(name: str, x, gen=None):
    """The test copy `name`'s degradation applied to uint8 images x."""
    return apply_change(TEST_COPIES, name, x, gen)


def robust_augment(x, gen, p: float, extra=()):
    """Each degradation with a training range (and each opted-in kind of `extra`) hits a random share p of the
    batch, at one strength per batch and kind drawn from that range (so each is a single batched call)."""
    n = x.shape[0]
    for kind, d in DEGRADATIONS.items():
        strengths = training_range(kind, extra)
        if strengths is None:
            continue
        hit = torch.rand(n, generator=gen) < p
        if not hit.any():
            continue
        idx = hit.nonzero().squeeze(1).to(x.device)
        lo, hi = strengths
        u = float(torch.rand((), generator=gen))
        strength = lo + round((hi - lo) * u) if d.integer else lo + (hi - lo) * u
        x = x.index_copy(0, idx, d.apply(x[idx], strength, gen))
    return x

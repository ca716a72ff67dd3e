"""More families of local edit than the shipped five, for an edit detector that must find edits of kinds and
tools it never saw (ManTra-Net and TruFor generalise by learning many manipulations, not five).

Each family is a function of a whole uint8 batch (N, 3, H, W) and a generator, like data.synthetic_edits': it
returns the edited images, and `edit_batch` there takes the exact mask as the pixels that changed. The region
of an edit is a free-form mask (`free_form_masks`: rectangles, ellipses, brush strokes, blobs, and one time in
ten a region covering most of the image, as a quarter of the shipped edits do), and strengths run from faint
to strong. Registered in data.synthetic_edits.EDITS beside the shipped five, so `--edit-kinds` names them.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .degradations import jpeg
from .lazy import TF


def _u(n, lo, hi, gen):
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def free_form_masks(n, size, gen) -> torch.Tensor:
    """(N, size, size) bool: per image a rectangle, an ellipse, a brush stroke or a blob, of 1-15% of the
    image, or (one in ten) a region covering 50-90% of it."""
    r = torch.arange(size).float().view(1, -1, 1)
    c = torch.arange(size).float().view(1, 1, -1)
    large = torch.rand(n, generator=gen) < 0.1
    scale = torch.where(large, _u(n, 0.35, 0.5, gen), _u(n, 0.08, 0.25, gen)) * size  # half-extent in pixels
    cy, cx = _u(n, 0.2, 0.8, gen) * size, _u(n, 0.2, 0.8, gen) * size
    ry, rx = scale * _u(n, 0.6, 1.4, gen), scale * _u(n, 0.6, 1.4, gen)
    dy, dx = (r - cy.view(-1, 1, 1)) / ry.view(-1, 1, 1), (c - cx.view(-1, 1, 1)) / rx.view(-1, 1, 1)
    rect = (dy.abs() <= 1) & (dx.abs() <= 1)
    ellipse = dy ** 2 + dx ** 2 <= 1
    # a blob: an ellipse whose edge wobbles with the angle
    angle = torch.atan2(dy, dx)
    wobble = 1 + 0.3 * torch.sin(3 * angle + _u(n, 0, 6.3, gen).view(-1, 1, 1))
    blob = dy ** 2 + dx ** 2 <= wobble ** 2
    # a brush stroke: disks along a random walk from the centre
    stroke = torch.zeros(n, size, size, dtype=torch.bool)
    width = _u(n, 1.0, 3.0, gen).view(-1, 1, 1)
    py, px = cy.clone(), cx.clone()
    heading = _u(n, 0, 2 * math.pi, gen)
    for _ in range(8):
        stroke |= (r - py.view(-1, 1, 1)) ** 2 + (c - px.view(-1, 1, 1)) ** 2 <= width ** 2
        heading = heading + _u(n, -0.8, 0.8, gen)
        py = (py + scale / 3 * torch.sin(heading)).clamp(0, size - 1)
        px = (px + scale / 3 * torch.cos(heading)).clamp(0, size - 1)
    shape = torch.randint(0, 4, (n,), generator=gen).view(-1, 1, 1)
    masks = torch.where(shape == 0, rect, torch.where(shape == 1, ellipse, torch.where(shape == 2, blob, stroke)))
    return masks


def _paste(img, other, gen):
    """`other` (float or uint8 images like img) inside a free-form mask of each image."""
    m = free_form_masks(img.shape[0], img.shape[-1], gen).unsqueeze(1)
    other = other.round().clamp(0, 255).to(torch.uint8) if other.is_floating_point() else other
    return torch.where(m, other, img)


def splice(img, gen):
    """A region from another image (the next in the batch, mirrored), moved to a random place."""
    donor = img.roll(1, 0).flip(-1)
    shift = torch.randint(-8, 9, (2,), generator=gen).tolist()
    return _paste(img, donor.roll(shift, (2, 3)), gen)


def copy_move_transformed(img, gen):
    """Clone stamp with a transformation: the image rotated 90/180/270 degrees or mirrored, then shifted."""
    k = int(torch.randint(0, 4, (), generator=gen))
    donor = img.flip(-2) if k == 0 else torch.rot90(img, k, (2, 3))
    shift = torch.randint(-10, 11, (2,), generator=gen).tolist()
    return _paste(img, donor.roll(shift, (2, 3)), gen)


def resample_patch(img, gen):
    """A region scaled in place (0.6-1.6x about the image centre): a local resize."""
    factor = float(_u(1, 0.6, 1.6, gen))
    size = img.shape[-1]
    theta = torch.tensor([[1 / factor, 0, 0], [0, 1 / factor, 0]], dtype=torch.float32).expand(img.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    scaled = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return _paste(img, scaled[..., :size, :size], gen)


def sharpen_patch(img, gen):
    soft = TF.gaussian_blur(img.float(), kernel_size=[3, 3], sigma=[1.0, 1.0])
    amount = float(_u(1, 0.5, 2.5, gen))
    return _paste(img, img.float() + amount * (img.float() - soft), gen)


def hue_saturation_patch(img, gen):
    """A region's hue turned (up to 0.15 of the circle) and its saturation scaled (0.4-1.8)."""
    changed = TF.adjust_hue(img, float(_u(1, -0.15, 0.15, gen)))
    return _paste(img, TF.adjust_saturation(changed, float(_u(1, 0.4, 1.8, gen))), gen)


def color_balance_patch(img, gen):
    gains = _u(img.shape[0] * 3, 0.75, 1.25, gen).view(-1, 3, 1, 1)
    return _paste(img, img.float() * gains, gen)


def gamma_patch(img, gen):
    g = _u(img.shape[0], 0.55, 1.8, gen).view(-1, 1, 1, 1)
    return _paste(img, 255.0 * (img.float() / 255.0) ** g, gen)


def noise_patch(img, gen):
    """Gaussian or uniform noise of std 2-20 levels in a region (sensor noise elsewhere than the rest)."""
    n = img.shape[0]
    std = _u(n, 2, 20, gen).view(-1, 1, 1, 1)
    gauss = torch.randn(img.shape, generator=gen)
    uniform = (torch.rand(img.shape, generator=gen) - 0.5) * math.sqrt(12)
    pick = (torch.rand(n, generator=gen) < 0.5).view(-1, 1, 1, 1)
    return _paste(img, img.float() + std * torch.where(pick, gauss, uniform), gen)


def jpeg_patch(img, gen):
    """A region re-compressed at JPEG quality 30-90 on a grid shifted by 1-7 pixels (a pasted JPEG crop)."""
    dy, dx = torch.randint(1, 8, (2,), generator=gen).tolist()
    q = int(torch.randint(30, 91, (), generator=gen))
    shifted = F.pad(img, (dx, 8 - dx, dy, 8 - dy), mode="replicate")
    compressed = jpeg(shifted, q)[..., dy:dy + img.shape[-2], dx:dx + img.shape[-1]]
    return _paste(img, compressed, gen)


def median_patch(img, gen):
    """3x3 median filtering of a region (a noise-removal brush)."""
    padded = F.pad(img.float(), (1, 1, 1, 1), mode="replicate")
    patches = padded.unfold(2, 3, 1).unfold(3, 3, 1)  # (N, 3, H, W, 3, 3)
    return _paste(img, patches.flatten(-2).median(-1).values, gen)


def inpaint_patch(img, gen):
    """Object removal: a free-form region filled by OpenCV's Telea or Navier-Stokes inpainting."""
    import cv2
    masks = free_form_masks(img.shape[0], img.shape[-1], gen)
    method = cv2.INPAINT_TELEA if bool(torch.rand((), generator=gen) < 0.5) else cv2.INPAINT_NS
    out = [cv2.inpaint(np.ascontiguousarray(a), m.numpy().astype(np.uint8), 3, method)
           for a, m in zip(img.cpu().permute(0, 2, 3, 1).numpy(), masks)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(img.device)


def sticker(img, gen):
    """Text or a filled shape drawn over the image (a caption, an emoji sticker), in a random colour."""
    rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, (), generator=gen)))
    out = []
    for a in img.cpu().permute(0, 2, 3, 1).numpy():
        im = Image.fromarray(a)
        draw = ImageDraw.Draw(im)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, 24, 2))
        if rng.random() < 0.5:
            draw.text((x, y), "".join(rng.choice(list("ABCXYZ0123!?"), int(rng.integers(1, 5)))), fill=colour)
        else:
            w, h = (int(v) for v in rng.integers(4, 12, 2))
            draw.ellipse((x, y, x + w, y + h), fill=colour, outline=(255, 255, 255))
        out.append(np.asarray(im))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(img.device)


FAMILIES = {"splice": splice, "copy_move_transformed": copy_move_transformed, "inpaint": inpaint_patch,
            "resample_patch": resample_patch, "sharpen_patch": sharpen_patch,
            "hue_saturation_patch": hue_saturation_patch, "color_balance_patch": color_balance_patch,
            "gamma_patch": gamma_patch, "noise_patch": noise_patch, "jpeg_patch": jpeg_patch,
            "median_patch": median_patch, "sticker": sticker}

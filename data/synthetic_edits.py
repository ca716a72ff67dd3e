"""Local edits made on the fly, on whole batches of uint8 (N, 3, H, W) tensors, each with its exact mask: the
unlimited training data of an edit detector. The kinds are those of data/edits.py (the shipped EDITED images'
kinds), drawn over wider strengths than the shipped ones, small and faint edits included:

- salt_and_pepper: a share of a rectangle's pixels set to black or white;
- blur_patch: a rectangle Gaussian-blurred;
- smooth_patch: a rectangle replaced by a vertical blend of the rows above and below it (an inpainted look);
- copy_patch: a rectangle overwritten by another part of the same image (clone stamp);
- brightness_contrast: a rectangle brightened or darkened and its contrast stretched or flattened.

`edit_batch(images, gen)` -> (edited images, masks (N, H, W) bool, kinds): a mask is True exactly where the edit
changed a pixel (in any channel). Everything is drawn from `gen`, so a seeded generator repeats the edits.
`edit_some` edits a share of the REAL images of a labelled batch, relabels them EDITED and returns their masks
(training batches and the validation part alike).
"""
import torch

from .edit_families import FAMILIES
from .lazy import TF
from .sources import order_classes

KINDS = ("salt_and_pepper", "blur_patch", "smooth_patch", "copy_patch", "brightness_contrast")


def _uniform(n, lo, hi, gen):
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _regions(n, size, lo, hi, gen):
    """Per image a rectangle: (x, y, w, h) tensors, sides drawn from lo..hi pixels of a 32 px image, as large a
    share of a larger one (the same draws at 32 px)."""
    if size != 32:
        lo, hi = max(1, round(lo * size / 32)), min(size, round(hi * size / 32))
    w = torch.randint(lo, hi + 1, (n,), generator=gen)
    h = torch.randint(lo, hi + 1, (n,), generator=gen)
    x = (torch.rand(n, generator=gen) * (size - w + 1)).long()
    y = (torch.rand(n, generator=gen) * (size - h + 1)).long()
    return x, y, w, h


def _box_mask(x, y, w, h, size):
    """(N, size, size) bool: True inside each image's rectangle."""
    r = torch.arange(size).view(1, -1, 1)
    c = torch.arange(size).view(1, 1, -1)
    return ((r >= y.view(-1, 1, 1)) & (r < (y + h).view(-1, 1, 1)) & (c >= x.view(-1, 1, 1))
            & (c < (x + w).view(-1, 1, 1)))


def salt_and_pepper(img, gen):
    n, _, size, _ = img.shape
    box = _box_mask(*_regions(n, size, 4, size, gen), size)
    amount = _uniform(n, 0.005, 0.10, gen).view(-1, 1, 1)
    hit = box & (torch.rand(n, size, size, generator=gen) < amount)
    value = torch.where(torch.rand(n, size, size, generator=gen) < 0.5, 0, 255).to(torch.uint8)
    return torch.where(hit.unsqueeze(1), value.unsqueeze(1), img)


def blur_patch(img, gen):
    n, _, size, _ = img.shape
    box = _box_mask(*_regions(n, size, 4, 20, gen), size)
    sigma = float(_uniform(1, 0.5, 2.5, gen))  # one strength per batch: one batched blur
    blurred = TF.gaussian_blur(img, kernel_size=[5, 5], sigma=[sigma, sigma])
    return torch.where(box.unsqueeze(1), blurred, img)


def smooth_patch(img, gen):
    n, _, size, _ = img.shape
    x, y, w, h = _regions(n, size, 3, 14, gen)
    box = _box_mask(x, y, w, h, size)
    idx = torch.arange(n)
    top = img[idx, :, (y - 1).clamp(min=0)].float()              # (N, 3, size): the row above
    bottom = img[idx, :, (y + h).clamp(max=size - 1)].float()    # the row below
    r = torch.arange(size).view(1, -1)
    t = ((r - y.view(-1, 1)).float() / (h - 1).clamp(min=1).view(-1, 1)).clamp(0, 1)  # (N, size)
    fill = (1 - t).view(n, 1, size, 1) * top.unsqueeze(2) + t.view(n, 1, size, 1) * bottom.unsqueeze(2)
    return torch.where(box.unsqueeze(1), (fill + 0.5).clamp(0, 255).to(torch.uint8), img)


def copy_patch(img, gen):
    n, _, size, _ = img.shape
    x, y, w, h = _regions(n, size, 3, 14, gen)
    sx = (torch.rand(n, generator=gen) * (size - w + 1)).long()
    sy = (torch.rand(n, generator=gen) * (size - h + 1)).long()
    r = (torch.arange(size).view(1, -1) + (sy - y).view(-1, 1)).clamp(0, size - 1)  # (N, size) source rows
    c = (torch.arange(size).view(1, -1) + (sx - x).view(-1, 1)).clamp(0, size - 1)
    idx = torch.arange(n).view(-1, 1, 1)
    moved = img.permute(0, 2, 3, 1)[idx, r.unsqueeze(2), c.unsqueeze(1)].permute(0, 3, 1, 2)
    return torch.where(_box_mask(x, y, w, h, size).unsqueeze(1), moved, img)


def brightness_contrast(img, gen):
    n, _, size, _ = img.shape
    box = _box_mask(*_regions(n, size, 4, 20, gen), size).unsqueeze(1)
    # faint edits too: brightness from -40 to 40 levels, contrast 0.6-1.6
    brightness = _uniform(n, -40, 40, gen).view(-1, 1, 1, 1)
    contrast = _uniform(n, 0.6, 1.6, gen).view(-1, 1, 1, 1)
    x = img.float()
    mean = (x * box).sum((2, 3), keepdim=True) / box.sum((2, 3), keepdim=True).clamp(min=1)
    changed = ((x - mean) * contrast + mean + brightness + 0.5).clamp(0, 255).to(torch.uint8)
    return torch.where(box, changed, img)


EDITS = {"salt_and_pepper": salt_and_pepper, "blur_patch": blur_patch, "smooth_patch": smooth_patch,
         "copy_patch": copy_patch, "brightness_contrast": brightness_contrast, **FAMILIES}
# every family: the shipped five (KINDS, the edits recipe's default) and data.edit_families' twelve
ALL_KINDS = tuple(EDITS)


def kinds_from(text=None) -> tuple:
    """A run's `edit_kinds` setting -> the kinds: comma-separated names, "all" for ALL_KINDS, or None for the
    shipped five."""
    if text is None:
        return KINDS
    return _known(ALL_KINDS if text == "all" else tuple(k.strip() for k in text.split(",")))


def _known(kinds):
    unknown = set(kinds) - set(EDITS)
    if unknown:
        raise ValueError(f"unknown edit kind(s) {', '.join(sorted(unknown))}; known: {', '.join(ALL_KINDS)}")
    return kinds


def edit_batch(images, gen, kinds=KINDS, second_edit=0.3):
    """-> (edited uint8 images, masks (N, H, W) bool of the changed pixels, the first edit's kind index into
    `kinds` per image). Each image gets one edit of a kind drawn uniformly from `kinds`, and a second one with
    probability `second_edit`."""
    _known(kinds)
    n = images.shape[0]
    out = images.cpu()
    first = torch.randint(0, len(kinds), (n,), generator=gen)
    for round_, chosen in enumerate((first, torch.randint(0, len(kinds), (n,), generator=gen))):
        todo = torch.ones(n, dtype=torch.bool) if round_ == 0 else torch.rand(n, generator=gen) < second_edit
        for k, kind in enumerate(kinds):
            idx = (todo & (chosen == k)).nonzero().squeeze(1)
            if len(idx):
                out = out.index_copy(0, idx, EDITS[kind](out[idx], gen))
    masks = (out != images.cpu()).any(1)
    return out.to(images.device), masks.to(images.device), first


EDITED, REAL = "EDITED", "REAL"


def edit_classes_from(text=None) -> tuple:
    """A run's `edit_classes` setting ("REAL" or "REAL,FAKE"; None: REAL) -> the class names whose images
    synthetic edits may hit."""
    names = tuple(c.strip().upper() for c in (text or REAL).split(",") if c.strip())
    if not names or EDITED in names:
        raise ValueError(f"edit classes {text!r}: name the classes to edit, e.g. REAL or REAL,FAKE (not EDITED)")
    return names


def with_edited_class(classes):
    """-> (classes with EDITED among them, in the repo's order: REAL, EDITED, FAKE; index map old -> new)."""
    new = order_classes(list(classes) + [EDITED])
    return new, torch.tensor([new.index(c) for c in classes])


def edit_some(images, labels, classes, share, gen, kinds=KINDS, masks=None, edit_classes=(REAL,)):
    """Edit a random share of the images labelled one of `edit_classes` (REAL photos, by default; an edit
    localiser edits FAKE images too, so that "edited" never means "a real photo"); those an edit really changed
    are relabelled EDITED, or keep their class where `classes` has no EDITED (edits drawn as label-neutral, for a
    real-vs-fake network that an edit must not move). -> (images, labels, masks): new tensors (the inputs are left
    as they are); `masks` (N, H, W) bool marks the edited pixels, starting from the given `masks` (e.g. the
    shipped EDITED images') or from none."""
    labels = torch.as_tensor(labels).clone()
    n, _, h, w = images.shape
    masks = torch.zeros(n, h, w, dtype=torch.bool, device=images.device) if masks is None else masks.clone()
    source = torch.isin(labels.cpu(), torch.tensor([classes.index(c) for c in edit_classes]))
    hit = (source & (torch.rand(len(labels), generator=gen) < share)).nonzero().squeeze(1)
    if len(hit) == 0:
        return images, labels, masks
    changed, changed_masks, _ = edit_batch(images[hit.to(images.device)], gen, kinds)
    images = images.index_copy(0, hit.to(images.device), changed)
    masks = masks.index_copy(0, hit.to(masks.device), changed_masks.to(masks.device))
    if EDITED in classes:
        labels[hit[changed_masks.flatten(1).any(1).cpu()].to(labels.device)] = classes.index(EDITED)
    return images, labels, masks

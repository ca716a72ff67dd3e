"""The twelve further families of local edit (data/edit_families.py): each changes most images, only in a
part of the image, repeatably; their free-form regions come in several shapes and sizes."""
import pytest
import torch

from data.edit_families import FAMILIES, free_form_masks
from data.synthetic_edits import ALL_KINDS, KINDS, edit_batch
from tests.test_synthetic_edits import _photos


def test_there_are_at_least_twelve_families_beside_the_shipped_five():
    assert len(FAMILIES) >= 12 and set(KINDS) | set(FAMILIES) == set(ALL_KINDS) and not set(KINDS) & set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_edits_part_of_most_images_repeatably(family):
    x = _photos(48, seed=6)
    out, masks, _ = edit_batch(x, torch.Generator().manual_seed(7), kinds=(family,), second_edit=0)
    again, _, _ = edit_batch(x, torch.Generator().manual_seed(7), kinds=(family,), second_edit=0)
    assert torch.equal(out, again) and out.shape == x.shape and out.dtype == torch.uint8
    area = masks.float().mean((1, 2))
    assert (area > 0).float().mean() >= 0.8  # nearly every image really changed
    assert area.median() < 0.5  # local: most edits leave most of the image as it was
    assert torch.equal(masks, (out != x).any(1))


def test_free_form_regions_vary_in_shape_and_size():
    masks = free_form_masks(400, 32, torch.Generator().manual_seed(0))
    area = masks.float().mean((1, 2))
    assert area.min() > 0 and (area < 0.1).float().mean() > 0.3 and (area > 0.5).float().mean() > 0.02
    # not all rectangles: many masks fill only part of their bounding box
    rows, cols = masks.any(2), masks.any(1)
    box = rows.sum(1) * cols.sum(1)
    assert (masks.flatten(1).sum(1) < 0.9 * box).float().mean() > 0.3

"""On-the-fly edits on batches: seeded, each kind what it says, masks exactly the changed pixels."""
import pytest
import torch

from data.synthetic_edits import EDITS, KINDS, edit_batch


def _photos(n=64, seed=0):
    """Smooth random gradients with texture: every edit kind changes them somewhere."""
    g = torch.Generator().manual_seed(seed)
    r = torch.linspace(0, 1, 32)
    base = torch.rand(n, 3, 1, 1, generator=g) * 150 + 50 * r.view(1, 1, -1, 1) + 50 * r.view(1, 1, 1, -1)
    return (base + 20 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 255).to(torch.uint8)


def test_edits_are_seeded_and_masks_are_the_changed_pixels():
    x = _photos()
    a, mask_a, kinds_a = edit_batch(x, torch.Generator().manual_seed(1))
    b, mask_b, kinds_b = edit_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(mask_a, mask_b) and torch.equal(kinds_a, kinds_b)
    c, _, _ = edit_batch(x, torch.Generator().manual_seed(2))
    assert not torch.equal(a, c)
    assert torch.equal(mask_a, (a != x).any(1)) and a.dtype == torch.uint8 and a.shape == x.shape
    assert mask_a.flatten(1).any(1).float().mean() > 0.9  # nearly every image really changed
    assert set(kinds_a.tolist()) == set(range(len(KINDS)))


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_stays_in_one_rectangle_and_does_what_it_says(kind):
    x = _photos(48, seed=3)
    out = EDITS[kind](x, torch.Generator().manual_seed(4))
    changed = (out != x).any(1)
    assert changed.flatten(1).any(1).float().mean() > 0.8
    for i in range(len(x)):
        rows, cols = changed[i].any(1).nonzero(), changed[i].any(0).nonzero()
        if len(rows) == 0:
            continue
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h * w < 32 * 32 or kind == "salt_and_pepper"  # local, not the whole image
        if kind == "salt_and_pepper":
            assert set(out[i][:, changed[i]].unique().tolist()) <= {0, 255}
        if kind == "copy_patch":  # the changed pixels hold values found elsewhere in the same image
            assert torch.isin(out[i][:, changed[i]], x[i]).all()


def test_only_the_asked_kinds_are_drawn():
    _, _, kinds = edit_batch(_photos(32), torch.Generator().manual_seed(0), kinds=("blur_patch",))
    assert kinds.unique().tolist() == [0]
    with pytest.raises(ValueError, match="unknown edit kind"):
        edit_batch(_photos(4), torch.Generator().manual_seed(0), kinds=("sepia",))


def test_a_runs_kinds_setting_names_kinds_or_all_and_a_misspelt_one_stops_train_py(capsys):
    import train
    from data.synthetic_edits import ALL_KINDS, kinds_from
    from utils import cli
    assert kinds_from("all") == ALL_KINDS and len(ALL_KINDS) >= 12
    assert kinds_from("splice, sticker") == ("splice", "sticker")
    with pytest.raises(SystemExit) as stop:  # before any data is read: the folder does not even exist
        cli.run(lambda: train.main(["--train-path", "no-such-folder", "--synthetic-edits", "0.5",
                                    "--edit-kinds", "splice,sepia"]))
    assert stop.value.code == 2 and "unknown edit kind(s) sepia" in capsys.readouterr().err


def test_batches_edit_a_share_of_real_images_and_relabel_them():
    from data import Batches
    x = _photos(200, seed=5)
    labels = torch.tensor([0, 2] * 100)  # REAL, FAKE of classes REAL, EDITED, FAKE
    b = Batches(x, labels, batch_size=200, shuffle=False, synthetic_edits=0.5, classes=["REAL", "EDITED", "FAKE"])
    (out, y), = list(b)
    changed = (out != x).flatten(1).any(1)
    assert torch.equal(changed, y == 1)  # exactly the edited images are EDITED
    assert 35 <= int((y == 1).sum()) <= 65 and bool((y[1::2] == 2).all())  # about half the REAL, no FAKE


def test_a_run_with_synthetic_edits_trains_three_classes_and_its_validation_part_is_reproducible(tiny_split, tmp_path):
    from data import load_folder
    from data.batches import training_split
    from utils.inference.evaluation import validation_images
    from utils.training.run import train
    folder = load_folder(tiny_split, verbose=False)
    first = training_split(folder, 0.2, 0, synthetic_edits=0.5)
    again = training_split(folder, 0.2, 0, synthetic_edits=0.5)
    assert first.classes == ["REAL", "EDITED", "FAKE"] and torch.equal(first.val_images, again.val_images)
    assert torch.equal(first.val_masks, again.val_masks)
    edited = first.val_labels == 1  # edits in validation, with their masks; train: on the fly
    assert edited.sum() > 0 and set(first.train_labels.tolist()) == {0, 2}
    assert first.val_masks.flatten(1).any(1).numpy().tolist() == edited.tolist()
    # a run trained under label-neutral changes validates on the same images saved as CIFAKE saves its files
    from data.degradations import CIFAKE_JPEG_QUALITY, jpeg
    robust = training_split(folder, 0.2, 0, synthetic_edits=0.5, robust=0.25)
    assert torch.equal(robust.val_images, jpeg(first.val_images, CIFAKE_JPEG_QUALITY))
    assert torch.equal(robust.val_masks, first.val_masks) and (robust.val_labels == first.val_labels).all()
    r = train(model="fullres_cnn", train_path=str(tiny_split), test_path="none", epochs=2, batch_size=16,
              synthetic_edits=0.5, val_fraction=0.2, out=str(tmp_path / "run"), progress=False, device="cpu")
    assert r["classes"] == ["REAL", "EDITED", "FAKE"]
    from utils.inference.checkpoint import load_checkpoint
    ck = load_checkpoint(r["checkpoint"])
    images, labels = validation_images(ck)  # what chose the checkpoint, edits included
    assert torch.equal(images, first.val_images) and labels.tolist() == first.val_labels.tolist()
    assert ck["val_metrics"]["n"] == len(labels)

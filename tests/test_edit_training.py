"""Training the default detector's parts: edits drawn as label-neutral for the real-vs-fake part, the folder's own
EDITED images repeated for the localiser, a fine-tune that starts from a trained (or joined) checkpoint, and a
localiser taken back out of a joined detector."""
import numpy as np
import pytest
import torch
from conftest import write_split

from data import DataError, load_folder
from data.batches import training_split
from data.synthetic_edits import ALL_KINDS, edit_some

CLASSES = ["REAL", "EDITED", "FAKE"]


@pytest.fixture(scope="module")
def edited_folder(tmp_path_factory):
    """REAL 40, EDITED 12 (named as 12 of the REAL photos: their sources), FAKE 40."""
    root = write_split(tmp_path_factory.mktemp("edits") / "train", {"REAL": 40, "EDITED": 12, "FAKE": 40}, seed=5)
    return load_folder(root, verbose=False)


def test_label_neutral_edits_keep_every_class(edited_folder):
    x = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    y = torch.tensor([0, 1] * 100)  # REAL, FAKE: no EDITED class to move them to
    changed, labels, masks = edit_some(x, y, ["REAL", "FAKE"], 0.5, torch.Generator().manual_seed(0), ALL_KINDS,
                                       None, ("REAL", "FAKE"))
    hit = masks.flatten(1).any(1)
    assert hit.sum() > 50 and torch.equal(labels, y) and not torch.equal(changed[hit], x[hit])


def test_a_label_neutral_split_counts_edits_as_their_sources_and_keeps_the_same_parts(edited_folder):
    edit_run = training_split(edited_folder, 0.25, 0)
    neutral = training_split(edited_folder, 0.25, 0, synthetic_edits=0.5, edit_classes=("REAL", "FAKE"),
                             label_neutral=True)
    assert edit_run.classes == CLASSES and neutral.classes == ["REAL", "FAKE"]
    # the same images on each side: the held-out EDITED images are held out of both parts
    assert np.array_equal(edit_run.train_idx, neutral.train_idx) and np.array_equal(edit_run.val_idx, neutral.val_idx)
    was_edited = np.asarray(edited_folder.labels)[neutral.train_idx] == CLASSES.index("EDITED")
    assert was_edited.any() and (neutral.train_labels[was_edited] == 0).all()  # REAL, their sources' class
    assert set(neutral.val_labels.tolist()) <= {0, 1}


def test_the_folders_own_edits_repeat_in_training_only(edited_folder):
    once = training_split(edited_folder, 0.25, 0)
    thrice = training_split(edited_folder, 0.25, 0, own_edits_repeat=3)
    own = lambda s: int((s.train_labels == CLASSES.index("EDITED")).sum())  # noqa: E731
    assert own(once) > 0 and own(thrice) == 3 * own(once)
    assert len(thrice.train_idx) == len(once.train_idx) + 2 * own(once)
    assert np.array_equal(once.val_idx, thrice.val_idx) and torch.equal(once.val_images, thrice.val_images)
    with pytest.raises(DataError, match="has none"):  # a folder without EDITED images has nothing to repeat
        training_split(load_folder(write_split(edited_folder.root.parent / "plain", {"REAL": 8, "FAKE": 8}),
                                   verbose=False), 0.25, 0, own_edits_repeat=3)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from utils.training.run import train
    base = tmp_path_factory.mktemp("parts")
    root = write_split(base / "t", {"REAL": 32, "FAKE": 32}, seed=13)
    common = dict(train_path=str(root), test_path="none", batch_size=32, progress=False, device="cpu", epochs=1)
    rvf = train(model="fullres_cnn_x2_pool_first", out=str(base / "rvf"), **common)
    loc = train(model="edit_map_srm", synthetic_edits=0.5, edit_classes="REAL,FAKE", out=str(base / "loc"), **common)
    return base, root, common, rvf["checkpoint"], loc["checkpoint"]


def test_a_fine_tune_starts_from_the_checkpoint_or_a_joined_detectors_localiser(two_runs):
    from shipping.two_part import join
    from utils.inference.checkpoint import (
        CheckpointError,
        load_checkpoint,
        localiser_of,
        model_from_checkpoint,
        save_checkpoint,
        start_from,
    )
    from utils.inference.scoring import run_with_map
    base, _, _, rvf_path, loc_path = two_runs
    rvf, loc = load_checkpoint(rvf_path), load_checkpoint(loc_path)
    joined = join(rvf, loc)
    save_checkpoint(joined, base / "joined.pt")
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    own_map = run_with_map(model_from_checkpoint(loc), x)[1]
    assert torch.allclose(run_with_map(model_from_checkpoint(localiser_of(joined)), x)[1], own_map, atol=1e-5)
    fresh = model_from_checkpoint(loc)
    torch.nn.init.zeros_(next(p for p in fresh.parameters() if p.ndim == 4))
    assert "started from" in start_from(fresh, base / "joined.pt", "edit_map_srm", CLASSES)
    assert torch.allclose(run_with_map(fresh.eval(), x)[1], own_map, atol=1e-5)
    with pytest.raises(CheckpointError, match="cannot start from it"):
        start_from(model_from_checkpoint(rvf), loc_path, "fullres_cnn_x2_pool_first", ["REAL", "FAKE"])


def test_train_init_from_continues_from_the_weights_it_names(two_runs):
    from utils.inference.checkpoint import load_checkpoint
    from utils.training.run import train
    base, _, common, rvf_path, _ = two_runs
    tuned = train(model="fullres_cnn_x2_pool_first", init_from=str(rvf_path), lr=1e-9, out=str(base / "tuned"),
                  **{**common, "ema": 0.0})
    before, after = load_checkpoint(rvf_path), load_checkpoint(tuned["checkpoint"])
    assert after["config"]["init_from"] == str(rvf_path) and after["normalization"] == before["normalization"]
    conv = next(k for k, v in before["state_dict"].items() if v.ndim == 4)
    assert torch.allclose(before["state_dict"][conv], after["state_dict"][conv], atol=1e-4)  # lr ~0: unmoved

"""The checkpoint's one way in and out: every older format is brought up to the current one on loading (and then
makes the same model), a newer one is refused, a write is never seen half-done, and the shipped detectors live at
one path."""
import pytest
import torch

from models import ImageClassifier, build_model
from utils.inference.checkpoint import (
    V1_CONFIG_DEFAULTS,
    VERSION,
    CheckpointError,
    default_detector,
    load_checkpoint,
    load_classifier,
    make_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
    weights_path,
)


def current_checkpoint(tta="flip"):
    torch.manual_seed(0)
    model = ImageClassifier(build_model("model_2", 2), [0.5] * 3, [0.25] * 3)
    model.tta = tta
    return make_checkpoint(model, "model_2", ["REAL", "FAKE"], 32, {"seed": 3, "val_fraction": 0.1}, {}, 1)


def older(version):
    """The checkpoint as version `version` wrote it: no image size or resize mode, a boolean flip_tta for the
    TTA mode, no temperature, and a config without the settings that came later."""
    ck = current_checkpoint()
    for key in ("image_size", "resize", "tta", "temperature"):
        del ck[key]
    ck["flip_tta"] = True
    if version:
        ck["version"] = version
    else:
        del ck["version"]
    return ck


@pytest.mark.parametrize("version", [0, 1])
def test_an_older_checkpoint_loads_as_the_current_format_and_makes_the_same_model(version, tmp_path):
    save_checkpoint(older(version), tmp_path / "old.pt")
    ck = load_checkpoint(tmp_path / "old.pt")
    assert ck["version"] == VERSION and "flip_tta" not in ck
    assert (ck["image_size"], ck["resize"], ck["tta"], ck["temperature"]) == (32, "shrink", "flip", 1.0)
    assert ck["config"]["seed"] == 3 and all(k in ck["config"] for k in V1_CONFIG_DEFAULTS)
    model, _ = load_classifier(tmp_path / "old.pt")
    save_checkpoint(current_checkpoint(), tmp_path / "new.pt")
    same, _ = load_classifier(tmp_path / "new.pt")
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert model.tta == "flip" and torch.equal(model(x), same(x))


def test_a_current_checkpoint_is_left_as_it_is():
    ck = current_checkpoint(tta="none")
    assert upgrade_checkpoint(ck) == ck and ck["version"] == VERSION


def test_a_newer_checkpoint_is_refused(tmp_path):
    save_checkpoint({**current_checkpoint(), "version": VERSION + 1}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="newer than this code"):
        load_checkpoint(tmp_path / "future.pt")


def test_a_save_leaves_only_the_checkpoint(tmp_path):
    save_checkpoint(current_checkpoint(), tmp_path / "run" / "checkpoint.pt")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["checkpoint.pt"]


def test_the_default_detector_is_at_its_weights_path():
    assert default_detector() == weights_path() and weights_path("three_class").name == "three_class.pt"
    assert weights_path().parent.name == "weights" and weights_path().is_file()

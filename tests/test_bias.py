"""Judged by the picture, not the file: every class has CIFAKE's encoding, the bias table measures how far a
label-neutral change moves verdicts, and a verdict on an image unlike the training images says "outside"."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from data.degradations import BIAS_CHANGES, DEGRADATIONS, apply_change, is_trained, opt_in_kinds, robust_augment
from tests.conftest import write_split
from utils.inference.checkpoint import load_classifier
from utils.inference.outside import fit_outside, outside_scores
from utils.reporting.bias import bias_table, trained_by
from utils.training.config import make_config


def test_edited_test_images_are_encoded_as_cifake_real_and_fake_are(shipped_root):
    """Quality 75's quantisation tables on every class: a file's encoding tells nothing about its class."""
    def tables(path):
        with Image.open(path) as im:
            return im.quantization

    split = shipped_root / "test-3class"
    reference = tables(sorted((split / "REAL").iterdir())[0])
    for cls in ("REAL", "EDITED", "FAKE"):
        for f in sorted((split / cls).iterdir())[:20]:
            assert tables(f) == reference, f
    manifest = json.loads((split / "manifest.json").read_text())["images"]
    assert not any(e["edit"] == "jpeg_resave" for entry in manifest.values() for e in entry["edits"])


def test_every_bias_change_keeps_shape_and_some_are_never_trained():
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    for name in BIAS_CHANGES:
        out = apply_change(BIAS_CHANGES, name, x, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.dtype == torch.uint8, name
    unseen = [n for n in BIAS_CHANGES if not is_trained(n)]
    assert {"webp80", "palette256", "enlarge2", "sharpen1"} <= set(unseen)
    assert DEGRADATIONS["noise"].train_range  # camera noise is trained as no edit


def test_a_run_opts_into_kept_aside_changes_and_the_table_says_which_part_drew_them():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    plain = robust_augment(x, torch.Generator().manual_seed(0), 1.0)
    opted = robust_augment(x, torch.Generator().manual_seed(0), 1.0, opt_in_kinds("sharpen"))
    assert not torch.equal(plain, opted)  # sharpening is drawn only when asked for
    assert is_trained("sharpen1", extra=("sharpen",)) and not is_trained("sharpen1")
    with pytest.raises(ValueError, match="saturation"):
        opt_in_kinds("sharpen,saturation")  # kept aside for good: the bias table's unseen change
    with pytest.raises(ValueError, match="robust_extra"):
        make_config("localiser", robust_extra="webb")
    two_part = {"config": {"robust_extra": ""}, "parts": {"real_vs_fake": {"config": {"robust_extra": ""}},
                                                          "localiser": {"config": {"robust_extra": "sharpen"}}}}
    assert trained_by("sharpen1", two_part) == ["localiser"] and trained_by("blur0.6", two_part) == [
        "real_vs_fake", "localiser"] and trained_by("enlarge2", two_part) == []


def test_the_bias_table_counts_moved_verdicts_and_where_they_went(trained_run):
    """A change that alters no pixel moves nothing; blurring away the generated images' fine checkerboard (the
    tiny FAKE class's only mark) moves FAKE verdicts to REAL, and the table says so."""
    classifier = load_classifier(trained_run["result"]["checkpoint"])
    images, truth = [], []
    for cls in ("REAL", "FAKE"):
        for f in sorted((trained_run["test_dir"] / cls).iterdir()):
            images.append(np.asarray(Image.open(f).convert("RGB")))
            truth.append(cls)
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    changes = {"gamma1": ("gamma", 1.0), "blur2": ("blur", 2.0)}
    table = bias_table(classifier, images, truth, changes=changes)
    assert table["n"] == len(truth) and set(table["changes"]) == set(changes)
    same, blurred = table["changes"]["gamma1"], table["changes"]["blur2"]
    assert same["moved"] == 0 and same["accuracy"] == table["clean"]["accuracy"] >= 0.9
    assert blurred["by_class"]["FAKE"]["REAL"] > 0.5 and blurred["accuracy"] < same["accuracy"]
    for row in (same, blurred):
        for cls in ("REAL", "FAKE"):
            assert sum(v for k, v in row["by_class"][cls].items() if k != "moved") == pytest.approx(1.0)
        assert row["called_edited"] == 0  # a two-class detector has no EDITED to call
    assert table["worst_change"] == "blur2" and table["worst_real_vs_fake_accuracy"] == blurred["accuracy"]


def test_a_run_carries_an_outside_score_that_flags_images_unlike_its_training_images(trained_run, tmp_path):
    """The cut is the held-out quantile: about 2.5% of images like the training ones are outside, while noise
    images (nothing like the smooth gradients trained on) all are; predict() reports it per file."""
    from utils.inference.predict import predict
    model, ck = load_classifier(trained_run["result"]["checkpoint"])
    stats = ck["outside"]
    assert stats["quantile"] == 0.975 and stats["heldout_images"] > 0 and stats["threshold"] > 0
    like = write_split(tmp_path / "like", {"REAL": 40, "FAKE": 40}, seed=21)
    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(noise / f"{i}.png")
    rows = list(predict((model, ck), [like, noise], device="cpu"))
    inside = [r["outside"] for r in rows if "/like/" in r["path"]]
    outside = [r["outside"] for r in rows if "/noise/" in r["path"]]
    assert len(inside) == 80 and np.mean(inside) <= 0.15
    assert all(outside) and all(r["outside_score"] > 1 for r in rows if "/noise/" in r["path"])


def test_fit_outside_cuts_at_the_held_out_quantile():
    """Scores are fitted on one set and cut on another; the cut leaves the asked share of the held-out set above."""
    from models import ImageClassifier, build_model
    torch.manual_seed(0)
    model = ImageClassifier(build_model("fullres_cnn", 2), [0.5] * 3, [0.25] * 3).eval()
    rng = np.random.default_rng(1)
    smooth = lambda n: torch.from_numpy(np.stack([write_like(rng) for _ in range(n)]))  # noqa: E731
    fit, held = smooth(300), smooth(200)
    stats = fit_outside(model, fit, held, quantile=0.9)
    share = float(np.mean(outside_scores(model, stats, held) > stats["threshold"]))
    assert share == pytest.approx(0.1, abs=0.01)
    assert set(stats["groups"]) == {"32", "16", "8", "4"}  # every resolution of the network has its say


def test_the_score_is_fitted_on_training_batches_and_cut_on_unedited_validation_images():
    """The Gaussians see the images as the run's batches showed them (edited photos among them, drawn from the
    seed), and the cut comes from the unedited validation images alone: edited ones, however far, do not move it."""
    from models import ImageClassifier, build_model
    from utils.inference.outside import fit_for_run, training_view
    torch.manual_seed(0)
    model = ImageClassifier(build_model("fullres_cnn", 3), [0.5] * 3, [0.25] * 3).eval()
    rng = np.random.default_rng(2)
    images = torch.from_numpy(np.stack([write_like(rng) for _ in range(200)]))
    labels = np.zeros(200, np.int64)  # all REAL: the view edits half of them
    classes, config = ["REAL", "EDITED", "FAKE"], {"seed": 0, "synthetic_edits": 0.5, "hflip": False}
    view = training_view(images, labels, config, classes, seed=0)
    changed = (view != images).flatten(1).any(1).float().mean()
    assert view.dtype == torch.uint8 and 0.3 < changed < 0.7
    assert torch.equal(view, training_view(images, labels, config, classes, seed=0))
    val = torch.from_numpy(np.stack([write_like(rng) for _ in range(100)]))
    val_labels = np.r_[np.zeros(80, np.int64), np.ones(20, np.int64)]
    far = val.clone()
    far[80:] = torch.from_numpy(rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8))  # the EDITED ones, far off
    stats = fit_for_run(model, images, labels, far, val_labels, config, classes)
    again = fit_for_run(model, images, labels, val, val_labels, config, classes)
    assert stats["heldout_images"] == 80 and stats["threshold"] == pytest.approx(again["threshold"])
    assert stats["fit_view"] == "training batches"
    # a label-neutral run: the edited images keep their class (REAL here), and their masks say which they are
    masks = torch.zeros(100, 32, 32, dtype=torch.bool)
    masks[80:, :4, :4] = True
    neutral = fit_for_run(model, images, labels, far, np.zeros(100, np.int64), config, classes, val_masks=masks)
    unmasked = fit_for_run(model, images, labels, far, np.zeros(100, np.int64), config, classes)
    assert neutral["heldout_images"] == 80 and neutral["threshold"] == pytest.approx(again["threshold"])
    assert unmasked["heldout_images"] == 100 and unmasked["threshold"] > neutral["threshold"]
    # fitted on the training images as they are: no edit or change drawn, the same cut rule
    from utils.inference.outside import CLEAN_VIEW, fit_outside
    clean = fit_for_run(model, images, labels, far, val_labels, config, classes, view=CLEAN_VIEW)
    direct = fit_outside(model, images, far[:80])
    assert clean["fit_view"] == CLEAN_VIEW and clean["threshold"] == pytest.approx(direct["threshold"])
    assert all(torch.allclose(clean["groups"][g]["mean"], direct["groups"][g]["mean"]) for g in direct["groups"])
    assert not torch.allclose(stats["groups"]["32"]["mean"], direct["groups"]["32"]["mean"])  # the drawn view differs
    with pytest.raises(ValueError, match="unknown outside fit view"):
        fit_for_run(model, images, labels, far, val_labels, config, classes, view="test images")


def write_like(rng):
    from tests.conftest import synthetic_image
    return synthetic_image(rng.choice(["REAL", "FAKE"]), rng).transpose(2, 0, 1)


def test_predict_cli_says_outside_in_text_and_json(trained_run, tmp_path, capsys):
    import predict
    rng = np.random.default_rng(3)
    noise = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(noise)
    checkpoint = trained_run["result"]["checkpoint"]
    assert predict.main(["--checkpoint", checkpoint, str(noise)]) == 0
    out, err = capsys.readouterr()
    assert out.rstrip("\n").split("\t")[-1] == "outside" and "1 of them outside what the detector knows" in err
    assert predict.main(["--checkpoint", checkpoint, str(noise), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["outside"] is True and row["outside_score"] > 1

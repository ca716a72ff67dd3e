"""The shipped detectors (weights/): each loads, matches its model card on a fixed slice of the test split, and
its ONNX export agrees with it; predict.py with no model named uses the default one (two_part_edits)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data.sources import REPO_ROOT
from shipping.detectors import DETECTORS, detector_path, load_card, regression_slice, slice_accuracy
from utils.inference.checkpoint import WEIGHTS_DIR, default_detector, load_checkpoint
from utils.inference.onnx_model import OnnxClassifier
from utils.inference.outside import FIT_VIEW

NAMES = list(DETECTORS)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_detector_is_small_and_says_how_it_was_made(name):
    card = load_card(name)
    ck = load_checkpoint(detector_path(name))
    # a two-part detector holds two networks and the outside statistics of both
    most = 8_000_000 if ck.get("edit_rule") else 5_000_000
    assert detector_path(name).stat().st_size < most and card["bytes"] == detector_path(name).stat().st_size
    assert (WEIGHTS_DIR / card["onnx"]).stat().st_size < 5_000_000
    assert card["train_command"].startswith("python train.py ") and "--epochs" in card["train_command"]
    provenance = ck["provenance"]
    assert len(provenance["git_commit"]) == 40 and provenance["train_signature"] and provenance["val_signature"]
    assert ck["classes"] == card["classes"] and ck["model_name"] == card["model_name"]
    if card["dtype"] == "float16":  # shipped in half precision only when measured to change (almost) no verdict
        assert card["half_precision"]["same_verdict"] >= 0.999
        assert all(v.dtype == torch.float16 for v in ck["state_dict"].values() if v.is_floating_point())
    for key in ("accuracy", "balanced_accuracy", "ece", "n"):
        assert key in card["test"]
    assert [row["set"] for row in card["robustness"]][0] == "test" and len(card["robustness"]) >= 5
    # the bias table (bench/bias.py's) and the outside-what-I-know score travel with every shipped detector
    bias = card["bias"]
    assert bias["worst_real_vs_fake_accuracy"] == min(r["accuracy"] for k, r in bias["changes"].items() if k != "clean")
    assert any(not r["trained"] for r in bias["changes"].values() if r["trained"] is not None)
    assert ck["outside"]["threshold"] == pytest.approx(card["outside"]["threshold"], rel=1e-4)
    assert card["outside"]["test_outside"] <= 0.05  # at most 5% of CIFAKE's own test images are called outside
    assert card["outside"]["outside_by_split"]["test"] == card["outside"]["test_outside"]
    # fitted as the detector asks (as training saw its images, or as they are), cut on unedited ones
    assert ck["outside"]["fit_view"] == DETECTORS[name].get("outside_view", FIT_VIEW)
    if ck.get("edit_rule"):  # a two-part detector's EDITED cut is a promise: at most 1% of unedited images pass it
        rule, v = ck["edit_rule"], ck["edit_rule"]["validation"]
        if "possible_cut" in rule:  # and "possibly edited" at most 5%
            assert v["possibly_edited"] <= rule["possible_false_alarm"] + 1 / v["unedited"]
            assert rule["possible_cut"] <= rule["cut"] and rule["possible_false_alarm"] <= 0.05
        assert rule["pixels"] == card["edit_rule"]["pixels"] and rule["false_alarm"] <= 0.01
        assert rule["cut"] == pytest.approx(card["edit_rule"]["cut"], abs=1e-5)  # the card rounds to 5 digits
        assert v["called_edited"] <= rule["false_alarm"] + 1 / v["unedited"] and v["unedited"] >= 10_000
        assert set(ck["parts"]) == {"real_vs_fake", "localiser"}


@pytest.fixture(scope="module")
def slices(shipped_root):
    """Each detector's regression slice, scored once through predict()'s path."""
    from utils.inference.checkpoint import load_classifier
    out = {}
    for name in NAMES:
        test_dir = shipped_root / load_card(name)["regression_slice"]["test_path"]
        out[name] = (test_dir, slice_accuracy(load_classifier(detector_path(name)), test_dir))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_shipped_detector_matches_its_model_card(name, slices):
    card = load_card(name)["regression_slice"]
    _, got = slices[name]
    shipped = load_card(name)
    assert got["n"] == card["n"] == card["per_class"] * len(shipped.get("verdict_classes") or shipped["classes"])
    # the same files and weights give the same verdicts; a different CPU may move a borderline image or two
    assert abs(got["accuracy"] - card["accuracy"]) <= 2 / card["n"], (got["accuracy"], card["accuracy"])
    assert np.abs(np.array(got["probabilities"]) - np.array(card["probabilities"])).max() < 2e-3


@pytest.mark.parametrize("name", NAMES)
def test_shipped_onnx_agrees_with_the_checkpoint(name, slices):
    test_dir, torch_scores = slices[name]
    onnx = slice_accuracy(OnnxClassifier(WEIGHTS_DIR / load_card(name)["onnx"]), test_dir)
    difference = np.abs(np.array(onnx["probabilities"]) - np.array(torch_scores["probabilities"])).max()
    assert difference < 1e-3 and abs(onnx["accuracy"] - torch_scores["accuracy"]) <= 1 / onnx["n"]


def test_predict_with_no_model_named_uses_the_shipped_detector(shipped_root, capsys):
    import predict
    paths, labels = regression_slice(shipped_root / "test-3class", per_class=2)
    with pytest.raises(SystemExit) as exit_code:
        from utils import cli
        cli.run(lambda: predict.main([*map(str, paths), "--json"]))
    assert exit_code.value.code == 0
    out, err = capsys.readouterr()
    assert f"# detector: {default_detector()}" in err and "6 files: 6 classified, 0 failed" in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert [r["label"] for r in rows].count("EDITED") <= 6 and all("edit_box" in r for r in rows)
    # the default answers two questions apart: P(FAKE) at its tuned threshold, and the edit score against its cuts
    ck = load_checkpoint(default_detector())
    threshold, rule = ck.get("threshold") or 0.5, ck["edit_rule"]
    for r in rows:
        edited = r["edit_score"] >= r["edit_cut"]
        fake = r["p_fake"] >= threshold and not (edited and r["p_fake"] < (rule.get("edit_wins_below") or 0))
        assert set(r["probabilities"]) == {"REAL", "FAKE"} and r["p_fake"] == r["probabilities"]["FAKE"]
        assert r["label"] == ("FAKE" if fake else "EDITED" if edited else "REAL")
        assert r["possibly_edited"] == (r["label"] != "EDITED" and r["edit_score"] >= rule.get("possible_cut", np.inf))


def test_ship_writes_weights_onnx_and_a_card_that_reproduces(trained_run, tmp_path):
    """ship() on a tiny run: the card's figures come back when the shipped file is loaded again."""
    import os

    from data.perturbed import build_perturbed_splits
    from shipping.detectors import ship
    from tests.conftest import write_split
    from utils.inference.checkpoint import load_classifier
    root = Path(os.environ["AIC_DATA_ROOT"])
    write_split(root / "test", {"REAL": 16, "FAKE": 16}, seed=7, fmt="JPEG")
    build_perturbed_splits(root, "test", verbose=False)
    card = ship("real_vs_fake_robust", Path(trained_run["result"]["checkpoint"]).parent, out_dir=tmp_path,
                log=lambda line: None)
    weights = tmp_path / "real_vs_fake_robust.pt"
    assert card["bytes"] == weights.stat().st_size and (tmp_path / card["onnx"]).is_file()
    assert json.loads((tmp_path / "real_vs_fake_robust.json").read_text()) == card
    assert card["dtype"] == ("float16" if card["half_precision"]["same_verdict"] >= 0.999 else "float32")
    assert card["test"]["n"] == 32 and [r["set"] for r in card["robustness"]][:2] == ["test", "test-jpeg75"]
    again = slice_accuracy(load_classifier(weights), root / "test")
    assert again["accuracy"] == card["regression_slice"]["accuracy"]
    assert card["onnx_slice"]["accuracy"] == card["regression_slice"]["accuracy"]
    assert card["provenance"]["git_commit"] == load_checkpoint(weights)["provenance"]["git_commit"]


def test_the_docs_say_what_the_cards_say(tmp_path):
    """README.md's and docs/model-card.md's tables of the shipped detectors are made from weights/<name>.json: a
    doc that disagrees with the cards fails here (`python ship.py --docs` rewrites it), and so does a changed card."""
    import shutil

    from shipping.cards import DOCS, load_cards, render, stale_docs
    cards = load_cards()
    assert stale_docs(cards) == []
    default = next(iter(cards))  # the default leads every table, and only its row says so
    assert default == default_detector().stem
    assert f"| `{default}` (default) |" in (REPO_ROOT / "README.md").read_text()
    assert (REPO_ROOT / "README.md").read_text().count(" (default) |") == 1
    for doc in DOCS:
        text = (REPO_ROOT / doc).read_text()
        assert "<!-- cards:" in text and render(text, cards) == text
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / doc, tmp_path / doc)
    card = cards["two_part"]
    changed = {**cards, "two_part": {**card, "test": {**card["test"], "accuracy": card["test"]["accuracy"] / 2}}}
    assert stale_docs(changed, tmp_path) == ["README.md", "docs/model-card.md"]


def test_two_part_edits_tells_a_label_neutral_change_from_an_edit(shipped_root):
    """docs/model-card.md, "Where a label-neutral change ends and an edit begins", on both sides of the line: a whole
    image re-saved, resized, blurred or noised within the trained ranges is not EDITED; salt-and-pepper specks
    over the whole image and a strongly blurred region are EDITED, or at least "possibly edited"."""
    from data.degradations import DEGRADATIONS, jpeg
    from data.edits import blur_patch, salt_and_pepper
    from data.images import load_image
    from utils.inference.checkpoint import load_classifier
    from utils.inference.predict import score_images
    paths, labels = regression_slice(shipped_root / "test-3class")
    real = np.stack([load_image(p)[0] for p, y in zip(paths, labels) if y == "REAL"])  # 200 (H, W, 3)
    tensor = torch.from_numpy(real.transpose(0, 3, 1, 2).copy())
    classifier = load_classifier(detector_path("two_part_edits"))

    def each(edit):
        return torch.from_numpy(np.stack([edit(x) for x in real]).transpose(0, 3, 1, 2).copy())

    def shares(x):  # -> (EDITED, EDITED or possibly edited), saved as CIFAKE saves its files
        s = score_images(classifier, jpeg(x, 75))
        names = np.asarray(s["classes"])[s["predictions"]]
        return float(np.mean(names == "EDITED")), float(np.mean((names == "EDITED") | s["possibly_edited"]))

    label_neutral = {"blur sigma 1.0": DEGRADATIONS["blur"].apply(tensor, 1.0, None),
                     "noise std 8": DEGRADATIONS["noise"].apply(tensor, 8.0, torch.Generator().manual_seed(0)),
                     "down to 16 px and back": DEGRADATIONS["resize"].apply(tensor, 16, None),
                     "JPEG 60": jpeg(tensor, 60)}
    for name, x in label_neutral.items():
        assert shares(x)[0] <= 0.03, name
    specks = shares(each(lambda x: salt_and_pepper(x, (0, 0, 32, 32), 0.06)))
    region, unedited = shares(each(lambda x: blur_patch(x, (10, 10, 12, 12), 3.0))), shares(tensor)
    assert specks[0] >= 0.5 and specks[1] >= 0.95
    assert region[0] >= 0.4 and region[1] >= unedited[1] + 0.4

"""The two-part detector: edits drawn on FAKE images too, the edit score pooled from the map, the verdict rule,
and a joined checkpoint that answers exactly as its two parts, through predict, evaluate and ONNX alike."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, write_split

from data.synthetic_edits import ALL_KINDS, edit_classes_from, edit_some
from utils.inference.verdict import VERDICT_CLASSES, edit_scores

CLASSES = ["REAL", "EDITED", "FAKE"]


def test_edits_hit_fake_images_only_when_asked():
    x = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    y = torch.tensor([0, 2] * 100)
    _, plain, _ = edit_some(x, y, CLASSES, 0.5, torch.Generator().manual_seed(0), ALL_KINDS)
    _, both, masks = edit_some(x, y, CLASSES, 0.5, torch.Generator().manual_seed(0), ALL_KINDS, None,
                               edit_classes_from("REAL,FAKE"))
    assert ((y == 2) & (plain == 1)).sum() == 0 and ((y == 0) & (plain == 1)).sum() > 20
    assert ((y == 2) & (both == 1)).sum() > 20 and ((y == 0) & (both == 1)).sum() > 20
    assert torch.equal(masks.flatten(1).any(1), both == 1)  # every EDITED label has its mask, and only those
    with pytest.raises(ValueError, match="EDITED"):
        edit_classes_from("REAL,EDITED")


def test_the_edit_score_is_a_region_against_the_rest_of_its_image():
    quiet = np.full((1, 32, 32), 0.02, np.float32)
    region = quiet.copy()
    region[0, 10:13, 4:7] = 0.9           # a 3x3 edit
    pixel = quiet.copy()
    pixel[0, 5, 5] = 0.9                  # one stray pixel
    everywhere = np.full((1, 32, 32), 0.6, np.float32)  # a whole-image change lifting the map everywhere
    s = {k: float(edit_scores(m, 9)[0]) for k, m in dict(quiet=quiet, region=region, pixel=pixel,
                                                       everywhere=everywhere).items()}
    assert s["region"] > 0.8 and s["pixel"] < 0.15 and abs(s["everywhere"]) < 1e-6 and abs(s["quiet"]) < 1e-6


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """A tiny real-vs-fake run and a tiny localiser (edits on REAL and FAKE), joined and given their cut."""
    from shipping.two_part import two_part_checkpoint
    from utils.inference.checkpoint import load_checkpoint, save_checkpoint
    from utils.training.run import train
    base = tmp_path_factory.mktemp("twopart")
    root = write_split(base / "t", {"REAL": 48, "FAKE": 48}, seed=11)
    common = dict(train_path=str(root), test_path="none", batch_size=32, progress=False, device="cpu")
    rvf = train(model="fullres_cnn_x2_pool_first", epochs=2, out=str(base / "rvf"), **common)
    loc = train(model="edit_map_srm", epochs=3, synthetic_edits=0.5, edit_classes="REAL,FAKE", robust=0.25,
                out=str(base / "loc"), **common)
    parts = load_checkpoint(rvf["checkpoint"]), load_checkpoint(loc["checkpoint"])
    ck = two_part_checkpoint(*parts)
    save_checkpoint(ck, base / "two_part.pt")
    return base / "two_part.pt", parts, root


def test_the_joined_detector_answers_as_its_parts(joined):
    from utils.inference.checkpoint import load_classifier, model_from_checkpoint
    from utils.inference.scoring import run_model
    path, (rvf, loc), _ = joined
    model, ck = load_classifier(path)
    x = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    logits, maps = run_model(model, x, with_map=True)
    _, loc_maps = run_model(model_from_checkpoint(loc), x, with_map=True)
    assert torch.allclose(logits, run_model(model_from_checkpoint(rvf), x), atol=1e-4)
    assert torch.allclose(maps, loc_maps, atol=1e-4)  # the localiser sees its own normalisation
    rule = ck["edit_rule"]
    v = rule["validation"]  # the cuts' quantiles let through their shares, give or take one image of so few
    assert rule["false_alarm"] == 0.01 and v["called_edited"] <= 0.01 + 1 / v["unedited"]
    assert rule["possible_false_alarm"] == 0.05 and v["possibly_edited"] <= 0.05 + 1 / v["unedited"]
    assert rule["possible_cut"] <= rule["cut"] and v["own_edited"] == 0 and v["own_edited_recall"] is None
    assert rule["pixels"] in (4, 9, 16, 25) and len(v["by_candidate"]) == 16  # 4 sizes x 4 whole-image weights
    assert v["edited_recall"] == max(r["edited_recall"] for r in v["by_candidate"].values())
    orders = v["balanced_accuracy_by_edit_wins_below"]
    assert orders[str(rule["edit_wins_below"])] == max(orders.values())
    assert ck["parts"]["localiser"]["config"]["edit_classes"] == "REAL,FAKE"
    # the localiser is used for its map alone: its kept epoch is the one whose map validated best
    history = json.loads((path.parent / "loc" / "history.json").read_text())["history"]
    f1 = [row["val_pixel_f1"] for row in history]
    assert ck["parts"]["localiser"]["val_metrics"]["pixel_f1"] == max(f1)
    assert ck["parts"]["localiser"]["val_metrics"]["epoch"] == 1 + f1.index(max(f1))


def test_predict_and_onnx_give_both_answers_and_the_same_verdicts(joined, tmp_path):
    from utils.inference.onnx_model import OnnxClassifier, export_onnx
    path, _, root = joined
    run = subprocess.run([sys.executable, str(REPO / "predict.py"), "--checkpoint", str(path), "--json",
                          str(root)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(rows) == 96
    rule = torch.load(path, weights_only=True)["edit_rule"]
    edit_wins_below = rule["edit_wins_below"] if rule["edit_wins_below"] is not None else 0.0
    for r in rows:
        edited = r["edit_score"] >= r["edit_cut"]
        fake = r["probabilities"]["FAKE"] >= 0.5 and not (edited and r["p_fake"] < edit_wins_below)
        assert r["label"] == ("FAKE" if fake else "EDITED" if edited else "REAL")
        assert r["p_fake"] == r["probabilities"]["FAKE"]
        assert r["possibly_edited"] == (r["label"] != "EDITED" and r["edit_score"] >= r["possible_cut"])
        assert not r["possibly_edited"] or r["uncertain"]
        shown = r["label"] == "EDITED" or r["possibly_edited"]
        assert (r["edit_box"] is not None) == (shown and r["edit_area"] > 0)
    export_onnx(str(path), tmp_path / "m.onnx")
    onnx_rows = list(OnnxClassifier(tmp_path / "m.onnx").predict([root]))
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in rows]
    assert max(abs(a["edit_score"] - b["edit_score"]) for a, b in zip(rows, onnx_rows)) < 1e-3


def test_evaluate_scores_three_verdicts_from_two_answers(joined, tmp_path):
    from utils.inference.evaluation import evaluate
    path, _, _ = joined
    test = write_split(tmp_path / "test3", {"REAL": 16, "EDITED": 16, "FAKE": 16}, seed=12)
    m = evaluate(str(path), str(test), device="cpu", verbose=False)
    assert m["classes"] == VERDICT_CLASSES and m["n"] == 48
    assert sum(map(sum, m["confusion_matrix"])) == 48 and "real_called_edited" in m


def test_the_outside_score_can_read_both_parts_and_the_noise_spectrum(joined):
    from utils.inference.checkpoint import load_classifier
    from utils.inference.outside import features_of, fit_outside, outside_scores, residual_features, summary
    path, _, _ = joined
    model, _ = load_classifier(path)
    g = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.interpolate(torch.rand(160, 3, 8, 8, generator=g) * 255, size=32, mode="bilinear")
    inside = smooth.round().to(torch.uint8)
    noisy = (smooth[:40] + 40 * torch.randn(40, 3, 32, 32, generator=g)).clamp(0, 255).round().to(torch.uint8)
    features = residual_features(inside)
    assert features.shape == (160, 3 + 3 * 8) and torch.isfinite(features).all()
    stats = fit_outside(model, inside[:120], inside[120:], with_map=True, residual=True)
    assert features_of(stats) == {"with_map": True, "residual": True} and "residual" in summary(stats)["feature_sizes"]
    # grain these images never had is far outside: their residual spectrum alone gives them away
    assert (outside_scores(model, stats, noisy) > stats["threshold"]).mean() > 0.9

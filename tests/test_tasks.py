"""The edited tasks: class balance, a tuned threshold, three classes, the JPEG-shortcut check."""
import numpy as np
import pytest
import torch

from models import loss_function
from tests.conftest import write_split
from utils.inference.checkpoint import load_checkpoint
from utils.inference.evaluation import evaluate
from utils.inference.metrics import classification_metrics
from utils.inference.predict import predict
from utils.inference.verdict import decide
from utils.training.calibration import tune_threshold
from utils.training.run import train


def test_balanced_losses_weight_the_minority():
    logits, y = torch.tensor([[0.3], [-0.2]]), torch.tensor([1, 0])
    plain, weighted = loss_function(2)(logits, y), loss_function(2, [30, 10])(logits, y)
    manual = torch.nn.functional.binary_cross_entropy_with_logits(logits.squeeze(1), y.float(),
                                                                  pos_weight=torch.tensor(3.0))
    assert weighted == pytest.approx(float(manual)) and weighted > plain
    ce = loss_function(3, [10, 5, 10])
    assert ce.weight.tolist() == pytest.approx([25 / 30, 25 / 15, 25 / 30])


def test_threshold_decides_and_is_tuned_for_balanced_accuracy():
    probs = np.array([[0.8, 0.2], [0.7, 0.3], [0.65, 0.35], [0.9, 0.1]])
    labels = np.array([0, 1, 1, 0])
    assert decide(probs).tolist() == [0, 0, 0, 0]
    assert decide(probs, 0.25).tolist() == [0, 1, 1, 0]
    t = tune_threshold(labels, probs)
    assert classification_metrics(labels, probs, ["REAL", "EDITED"], t)["balanced_accuracy"] == 1.0


def test_imbalanced_edited_task_trains_balanced_with_a_threshold(tmp_path):
    root = write_split(tmp_path / "real-edited", {"REAL": 60, "EDITED": 18}, seed=5)
    r = train(model="model_2", train_path=str(root), test_path=str(root), epochs=2, batch_size=16,
              balance=True, tune_threshold=True, out=str(tmp_path / "run"), progress=False, device="cpu")
    ck = load_checkpoint(r["checkpoint"])
    assert ck["classes"] == ["REAL", "EDITED"] and 0 < ck["threshold"] < 1
    assert r["test_metrics"]["threshold"] == ck["threshold"]
    rows = list(predict(r["checkpoint"], [root / "EDITED"], device="cpu"))
    assert all((row["label"] == "EDITED") == (row["probability"] >= ck["threshold"]) for row in rows)


def test_predict_cli_prints_three_probabilities(tmp_path):
    from tests.test_pipeline import cli
    root = write_split(tmp_path / "three", {"REAL": 12, "EDITED": 12, "FAKE": 12})
    r = train(model="model", train_path=str(root), test_path="none", epochs=1, batch_size=12,
              out=str(tmp_path / "r"), progress=False, device="cpu")
    out = cli("predict.py", "--checkpoint", r["checkpoint"], root / "FAKE" / "0001.png")
    path, label, prob, probs, *flag = out.stdout.strip().split("\t")
    parts = dict(p.split("=") for p in probs.split())
    assert flag == (["uncertain"] if float(prob) < 0.75 else [])  # the calibrated band
    assert out.returncode == 0 and set(parts) == {"REAL", "EDITED", "FAKE"}
    assert sum(map(float, parts.values())) == pytest.approx(1, abs=1e-3) and float(parts[label]) == float(prob)


def test_three_class_metrics_report_each_class(tmp_path):
    labels = np.array([0, 1, 2, 2, 1, 0])
    probs = np.eye(3)[[0, 1, 2, 1, 1, 2]] * 0.8 + 0.2 / 3
    m = classification_metrics(labels, probs, ["REAL", "EDITED", "FAKE"])
    assert m["per_class"]["EDITED"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["FAKE"]["recall"] == pytest.approx(0.5) and m["roc_auc"] is not None


def test_jpeg_shortcut_check_exposes_a_compression_sensitive_model(trained_run):
    # the tiny model keys on a one-pixel checkerboard, which heavy JPEG compression wipes out
    m = evaluate(trained_run["result"]["checkpoint"], trained_run["test_dir"], device="cpu", verbose=False,
                 jpeg_quality=10)
    assert m["jpeg_quality"] == 10 and m["jpeg_accuracy_change"] == pytest.approx(m["jpeg_accuracy"] - m["accuracy"])
    assert m["jpeg_accuracy_change"] < -0.1

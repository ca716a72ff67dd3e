"""Calibrated probabilities: temperature scaling on validation, ECE in the metrics, 'uncertain' verdicts."""
import numpy as np
import pytest
import torch

from models import fit_temperature, probabilities
from utils.inference.checkpoint import load_checkpoint, load_classifier
from utils.inference.metrics import classification_metrics, expected_calibration_error
from utils.inference.predict import predict
from utils.inference.verdict import UNCERTAIN_BELOW


def test_ece_of_perfect_and_overconfident_predictions():
    labels = np.array([0, 1] * 50)
    exact = np.eye(2)[labels]
    assert expected_calibration_error(labels, exact) == 0.0
    # always 90% sure, right half the time: ECE 0.4
    probs = np.tile([0.1, 0.9], (100, 1))
    assert expected_calibration_error(labels, probs) == pytest.approx(0.4)
    assert classification_metrics(labels, probs, ["REAL", "FAKE"])["ece"] == pytest.approx(0.4)


@pytest.mark.parametrize("outputs", [1, 3])
def test_temperature_scaling_undoes_overconfidence(outputs):
    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, outputs, generator=gen) * 2
    if outputs == 1:
        labels = (torch.rand(4000, generator=gen) < torch.sigmoid(true_logits[:, 0])).long()
    else:
        labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=gen).squeeze(1)
    overconfident = true_logits * 3  # what a network trained to zero loss tends to emit
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(labels.numpy(), probabilities(overconfident).numpy())
    after = expected_calibration_error(labels.numpy(), probabilities(overconfident / t).numpy())
    assert after < before / 2 and after < 0.03


def test_checkpoint_carries_the_temperature(trained_run):
    ck = load_checkpoint(trained_run["result"]["checkpoint"])
    assert ck["temperature"] > 0 and "ece" in ck["val_metrics"] and "ece_uncalibrated" in ck["val_metrics"]
    model, _ = load_classifier(trained_run["result"]["checkpoint"])
    assert float(model.temperature) == pytest.approx(ck["temperature"])
    assert trained_run["result"]["test_metrics"]["ece"] is not None
    # fitted on the saved weights' validation logits (kept from the best epoch, not scored again): the same fit
    from data import load_folder, split_train_val
    from utils.inference.scoring import run_model
    folder = load_folder(trained_run["train_dir"])
    _, val_idx = split_train_val(folder.labels, 0.1, 0)
    model.temperature.fill_(1.0)
    logits = run_model(model, folder.images[val_idx])
    assert fit_temperature(logits, folder.labels[val_idx]) == pytest.approx(ck["temperature"], rel=1e-3)


def test_uncertain_flag_follows_the_band(trained_run):
    rows = list(predict(trained_run["result"]["checkpoint"], [trained_run["test_dir"]], device="cpu"))
    for r in rows:
        chosen = r["probabilities"][r["label"]]
        assert r["uncertain"] == (chosen < UNCERTAIN_BELOW)

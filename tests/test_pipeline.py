"""train -> evaluate -> predict on a tiny generated dataset, through the functions and the command lines."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from data import DataError, load_folder
from tests.conftest import REPO, write_split
from utils.inference.checkpoint import CheckpointError, load_checkpoint, load_classifier
from utils.inference.evaluation import evaluate
from utils.inference.predict import predict
from utils.training.run import make_config, train


def cli(script, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_training_learns_and_writes_the_run_folder(trained_run):
    r = trained_run["result"]
    out = trained_run["base"] / "out"
    assert (out / "checkpoint.pt").is_file() and (out / "last.pt").is_file()
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]) == 4 and history["parameters"] == 1_454_081
    assert r["best_val"]["accuracy"] >= 0.9  # the checkerboard is easy
    assert r["test_metrics"]["accuracy"] >= 0.9
    assert json.loads((out / "test_metrics.json").read_text())["n"] == 64


def test_checkpoint_round_trip(trained_run):
    ck = load_checkpoint(trained_run["result"]["checkpoint"])
    assert ck["model_name"] == "model_2" and ck["classes"] == ["REAL", "FAKE"] and ck["image_size"] == 32
    assert len(ck["normalization"]["mean"]) == 3 and ck["config"]["epochs"] == 4
    assert ck["val_metrics"]["accuracy"] == trained_run["result"]["best_val"]["accuracy"]
    model, _ = load_classifier(trained_run["result"]["checkpoint"])
    again, _ = load_classifier(trained_run["result"]["checkpoint"])
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(model(x), again(x))


def test_evaluate_matches_the_training_report(trained_run):
    m = evaluate(trained_run["result"]["checkpoint"], trained_run["test_dir"], device="cpu", verbose=False)
    def without_speed(d):
        return {k: v for k, v in d.items() if k != "images_per_s"}
    assert without_speed(m) == without_speed(trained_run["result"]["test_metrics"])
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == m["n"] == 64 and np.trace(cm) / 64 == pytest.approx(m["accuracy"])


def test_predict_agrees_with_evaluate(trained_run):
    test_dir = trained_run["test_dir"]
    results = list(predict(trained_run["result"]["checkpoint"], [test_dir], device="cpu"))
    assert len(results) == 64 and all("error" not in r for r in results)
    truth = ["FAKE" if "FAKE" in r["path"] else "REAL" for r in results]
    accuracy = np.mean([r["label"] == t for r, t in zip(results, truth)])
    m = evaluate(trained_run["result"]["checkpoint"], test_dir, device="cpu", verbose=False)
    assert accuracy == pytest.approx(m["accuracy"])
    for r in results:
        assert r["probability"] == pytest.approx(r["probabilities"]["FAKE"])
        assert (r["label"] == "FAKE") == (r["probability"] > 0.5)


def test_one_class_folder_reports_a_detection_rate(trained_run, tmp_path):
    only_fake = write_split(tmp_path / "other-generator", {"fake": 20}, seed=11)
    m = evaluate(trained_run["result"]["checkpoint"], only_fake, device="cpu", verbose=False)
    assert m["n"] == 20 and m["detection_class"] == "FAKE" and m["roc_auc"] is None
    lo, hi = m["detection_rate_ci95"]
    assert lo <= m["detection_rate"] <= hi and m["detection_rate"] == pytest.approx(m["accuracy"])


def test_unknown_class_folder_names_both_sets(trained_run, tmp_path):
    odd = write_split(tmp_path / "odd", {"REAL": 2, "CARTOON": 2})
    with pytest.raises(DataError, match="CARTOON.*knows REAL, FAKE"):
        evaluate(trained_run["result"]["checkpoint"], odd, device="cpu", verbose=False)


def test_resume_continues_to_the_requested_epochs(tiny_split, tmp_path):
    out = tmp_path / "run"
    common = dict(model="model", train_path=str(tiny_split), test_path="none", batch_size=32, out=str(out),
                  progress=False, device="cpu", seed=3, schedule="none",
                  precision="fp32")  # auto times fp32 against bf16, and a busy CPU can tip that choice either way
    train(epochs=1, **common)
    resumed = train(epochs=2, resume=True, **common)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    straight = train(epochs=2, **{**common, "out": str(tmp_path / "straight")})
    # same batches, same dropout draws, same weights: resuming is invisible
    assert resumed["history"][1]["train_loss"] == pytest.approx(straight["history"][1]["train_loss"], rel=1e-5)
    # a scheduled run can be resumed and extended too
    common.update(schedule="onecycle", out=str(tmp_path / "onecycle"))
    train(epochs=1, **common)
    assert len(train(epochs=3, resume=True, **common)["history"]) == 3


def test_resume_keeps_the_precision_it_started_with(tiny_split, tmp_path):
    """--precision auto on --resume reuses the recorded precision instead of timing bf16 against fp32 again
    (one of the two starts below differs from what a fresh measurement would pick, on any CPU)."""
    for started in ("fp32", "bf16"):
        common = dict(model="model_2", train_path=str(tiny_split), test_path="none", batch_size=32, progress=False,
                      device="cpu", seed=3, out=str(tmp_path / started))
        train(epochs=1, precision=started, **common)
        resumed = train(epochs=2, resume=True, precision="auto", **common)
        assert resumed["precision"] == resumed["provenance"]["precision"] == started


def test_same_seed_same_run(tiny_split, tmp_path):
    runs = [train(model="model_2", train_path=str(tiny_split), test_path="none", epochs=1, batch_size=32,
                  out=str(tmp_path / f"r{i}"), progress=False, device="cpu", seed=7, precision="fp32")
            for i in range(2)]  # fp32 pinned: auto's timed choice of bf16 can differ between two runs on a busy CPU
    assert runs[0]["history"][0]["val_loss"] == runs[1]["history"][0]["val_loss"]


def test_recipes_and_overrides():
    seed = make_config("seed")
    assert (seed.lr, seed.batch_size, seed.epochs, seed.schedule, seed.vflip) == (1e-3, 64, 20, "none", True)
    assert make_config("seed", lr=0.01).lr == 0.01
    with pytest.raises(TypeError):
        make_config(learning_rate=1)


def test_three_classes_train_with_softmax(tmp_path):
    root = write_split(tmp_path / "three", {"REAL": 20, "EDITED": 20, "FAKE": 20})
    r = train(model="model_2", train_path=str(root), test_path=str(root), epochs=1, batch_size=16,
              out=str(tmp_path / "r3"), progress=False, device="cpu")
    assert r["classes"] == ["REAL", "EDITED", "FAKE"]
    assert np.array(r["test_metrics"]["confusion_matrix"]).shape == (3, 3)
    p = list(predict(r["checkpoint"], [root / "EDITED" / "0000.png"], device="cpu"))[0]
    assert set(p["probabilities"]) == {"REAL", "EDITED", "FAKE"}
    assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


# --- the command lines -----------------------------------------------------------------------------------

def test_evaluate_cli_json(trained_run):
    r = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path",
            trained_run["test_dir"], "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix", "n", "classes"):
        assert key in m
    assert m["n"] == 64 and m["classes"] == ["REAL", "FAKE"]
    assert m["tta"] == "none"  # the checkpoint's own mode (trained without TTA)


def test_evaluate_tta_overrides_the_checkpoints_mode(trained_run):
    from models import probabilities
    from utils.inference.scoring import run_model
    from utils.inference.verdict import decide
    r = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path",
            trained_run["test_dir"], "--json", "--tta", "flip-shift")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    model, ck = load_classifier(trained_run["result"]["checkpoint"])
    model.tta = "flip-shift"
    folder = load_folder(trained_run["test_dir"])
    probs = probabilities(run_model(model, folder.images)).numpy()
    assert m["tta"] == "flip-shift"
    decided = np.asarray(decide(probs, ck.get("threshold")))
    assert m["accuracy"] == pytest.approx(float((decided == folder.labels).mean()))
    bad = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--tta", "rotate")
    assert bad.returncode == 2 and "flip-shift" in bad.stderr


def test_predict_cli_exit_codes_and_json(trained_run, tmp_path):
    ck = trained_run["result"]["checkpoint"]
    good = trained_run["test_dir"] / "REAL" / "0000.png"
    r = cli("predict.py", "--checkpoint", ck, "--json", good)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.strip())
    assert set(row) >= {"path", "label", "probability", "probabilities"}

    (tmp_path / "bad.jpg").write_bytes(b"nope")
    (tmp_path / "dir.png").mkdir()
    big = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), "blue").save(big)
    r = cli("predict.py", "--checkpoint", ck, "--json", good, tmp_path / "bad.jpg", tmp_path / "dir.png",
            tmp_path / "missing.jpg", big)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [("error" in x) for x in rows] == [False, True, True, True, False]
    assert "directory" in rows[2]["error"] and "not found" in rows[3]["error"]
    assert "5 files: 2 classified, 3 failed" in r.stderr

    r = cli("predict.py", "--checkpoint", ck, good)  # plain text: path, label, probability
    path, label, prob, *flag = r.stdout.strip().split("\t")
    assert r.returncode == 0 and label in ("REAL", "FAKE") and 0 <= float(prob) <= 1 and flag in ([], ["uncertain"])


def test_bad_checkpoints_are_refused_in_one_line(tmp_path):
    not_ck = tmp_path / "notes.pt"
    not_ck.write_text("hello")
    torch.save({"just": torch.zeros(1)}, tmp_path / "other.pt")
    for path, expect in [(tmp_path / "missing.pt", "not found"), (not_ck, "not a checkpoint"),
                         (tmp_path / "other.pt", "not an ai-image-classifier checkpoint")]:
        with pytest.raises(CheckpointError, match=expect):
            load_checkpoint(path)
        r = cli("predict.py", "--checkpoint", path, str(tmp_path))
        assert r.returncode == 2 and "Traceback" not in r.stderr and expect in r.stderr
    r = cli("evaluate.py", "--checkpoint", not_ck)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    _RunsCode.marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ai-image-classifier/checkpoint", "payload": _RunsCode()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not _RunsCode.marker.exists()
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(_RunsCode(), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not _RunsCode.marker.exists()


def test_usage_errors_exit_2(tmp_path):
    assert cli("train.py", "--model", "nope").returncode == 2
    r = cli("train.py", "--train-path", tmp_path / "nowhere", "--no-progress")
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("script", ["prepare.py", "train.py", "evaluate.py", "predict.py"])
def test_help(script):
    r = cli(script, "--help")
    assert r.returncode == 0 and "usage" in r.stdout
    if script in ("train.py", "predict.py", "evaluate.py"):
        assert "REAL" in r.stdout  # every entry point says which class is negative

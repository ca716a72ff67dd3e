"""Errors and settings at the edges: Grad-CAM's device and view, the one-line error contract of every script, sidecar
files in folders, thresholds with three classes, TTA and calibration, --resume and test pairing, provenance, and
the bench's time to 93%."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data import DataError, default_data_root
from tests.conftest import write_split
from tests.test_pipeline import cli
from utils.inference.checkpoint import CheckpointError, load_checkpoint, load_classifier, save_checkpoint
from utils.inference.evaluation import predict_folder
from utils.inference.scoring import select_device
from utils.reporting.gradcam import gradcam
from utils.training.run import train


def test_gradcam_explains_the_plain_view_of_a_tta_model(trained_run):
    model, ck = load_classifier(trained_run["result"]["checkpoint"])
    images = torch.as_tensor(predict_folder((model, ck), trained_run["test_dir"], verbose=False)["folder"].images[:6])
    model.tta = "none"
    plain, _ = gradcam(model, images)
    model.tta = "flip"  # two views in eval mode; the map must still be that of the image, not of its mirror
    flip, _ = gradcam(model, images)
    assert np.allclose(plain, flip, atol=1e-5)
    assert model.tta == "flip"  # the caller's setting is left as it was


def test_scoring_on_a_device_never_moves_the_callers_model(trained_run, monkeypatch):
    model, ck = load_classifier(trained_run["result"]["checkpoint"])
    moved = []
    monkeypatch.setattr(model, "to", lambda *a, **k: moved.append(a) or model)
    predict_folder((model, ck), trained_run["test_dir"], device="cpu", verbose=False)
    assert moved == []  # report.py explains the same model afterwards, on the device it is on


@pytest.fixture(scope="module")
def broken_checkpoints(trained_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("broken")
    ck = load_checkpoint(trained_run["result"]["checkpoint"])
    torch.save({"weights": torch.zeros(3)}, base / "foreign.pt")  # a valid torch file, not a checkpoint
    save_checkpoint({**ck, "model_name": "no_such_net"}, base / "unknown_model.pt")
    save_checkpoint({**ck, "state_dict": {k: v for k, v in list(ck["state_dict"].items())[:-3]}},
                    base / "mismatch.pt")
    save_checkpoint({k: v for k, v in ck.items() if k != "normalization"}, base / "incomplete.pt")
    return base


BROKEN = {"foreign.pt": "not an ai-image-classifier checkpoint", "unknown_model.pt": "unknown model 'no_such_net'",
          "mismatch.pt": "do not make a model", "incomplete.pt": "no 'normalization' entry"}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_checkpoint_that_does_not_make_a_model_is_a_checkpoint_error(name, broken_checkpoints):
    with pytest.raises(CheckpointError, match=re.escape(BROKEN[name])):
        load_classifier(broken_checkpoints / name)


@pytest.mark.parametrize("script, name", [("evaluate.py", "unknown_model.pt"), ("predict.py", "mismatch.pt"),
                                          ("visualize.py", "incomplete.pt"), ("export.py", "foreign.pt")])
def test_a_bad_checkpoint_is_one_line_and_exit_2_in_every_script(script, name, broken_checkpoints, trained_run,
                                                                 tmp_path):
    args = {"evaluate.py": ["--test-path", trained_run["test_dir"]],
            "predict.py": [trained_run["test_dir"]],
            "visualize.py": ["--test-path", trained_run["test_dir"], "--out", tmp_path / "fig"],
            "export.py": ["--out", tmp_path / "m.onnx"]}[script]
    r = cli(script, "--checkpoint", broken_checkpoints / name, *args)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and BROKEN[name] in lines[-1] and "Traceback" not in r.stderr


def test_a_device_this_machine_lacks_is_a_data_error():
    for name in ("gpu7", "cuda:99", "tpu"):
        with pytest.raises(DataError, match=f"--device {name}"):
            select_device(name)
    assert select_device("cpu").type == "cpu"


@pytest.mark.parametrize("script", ["evaluate.py", "predict.py", "train.py"])
def test_a_bad_device_is_one_line_and_exit_2(script, trained_run):
    args = {"evaluate.py": ["--checkpoint", trained_run["result"]["checkpoint"]],
            "predict.py": ["--checkpoint", trained_run["result"]["checkpoint"], trained_run["test_dir"]],
            "train.py": ["--train-path", trained_run["train_dir"], "--epochs", "1"]}[script]
    r = cli(script, *args, "--device", "gpu7")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --device gpu7")
    assert "Traceback" not in r.stderr


def test_sidecar_files_in_folders_are_skipped_and_counted(trained_run, tmp_path):
    folder = write_split(tmp_path / "photos", {"REAL": 3}, seed=5)
    for name in ("0000.png.xmp", "notes.txt", "meta.json"):
        (folder / "REAL" / name).write_text("not an image")
    r = cli("predict.py", "--checkpoint", trained_run["result"]["checkpoint"], folder, "--json")
    assert r.returncode == 0, r.stderr  # not failures
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len([x for x in rows if "label" in x]) == 3 and len([x for x in rows if "skipped" in x]) == 3
    assert "6 files: 3 classified, 0 failed, 3 skipped" in r.stderr
    named = cli("predict.py", "--checkpoint", trained_run["result"]["checkpoint"], folder / "REAL" / "notes.txt")
    assert named.returncode == 1 and "ERROR" in named.stdout  # a file named explicitly still gets its error


def test_tune_threshold_with_three_classes_is_an_error(tmp_path):
    root = write_split(tmp_path / "three", {"REAL": 12, "EDITED": 12, "FAKE": 12})
    with pytest.raises(DataError, match="needs two classes"):
        train(model="model_2", train_path=str(root), test_path="none", epochs=1, tune_threshold=True,
              out=str(tmp_path / "run"), progress=False, device="cpu")


def test_evaluate_with_another_tta_refits_the_temperature(trained_run):
    checkpoint = trained_run["result"]["checkpoint"]
    r = cli("evaluate.py", "--checkpoint", checkpoint, "--test-path", trained_run["test_dir"], "--tta", "flip",
            "--json")
    assert r.returncode == 0, r.stderr
    assert "temperature refitted for tta flip on the checkpoint's validation split" in r.stderr
    ck = load_checkpoint(checkpoint)
    assert ck["tta"] == "none" and ck["temperature"] != 1.0


def test_evaluate_with_another_tta_and_no_validation_data_says_uncalibrated(trained_run, tmp_path):
    ck = load_checkpoint(trained_run["result"]["checkpoint"])
    moved = tmp_path / "elsewhere.pt"
    save_checkpoint({**ck, "config": {**ck["config"], "train_path": str(tmp_path / "gone")}}, moved)
    r = cli("evaluate.py", "--checkpoint", moved, "--test-path", trained_run["test_dir"], "--tta", "flip")
    assert r.returncode == 0 and "scores NOT calibrated" in r.stderr


def test_resume_without_last_pt_is_an_error(tiny_split, tmp_path):
    with pytest.raises(DataError, match="nothing to resume"):
        train(model="model_2", train_path=str(tiny_split), test_path="none", epochs=1, resume=True,
              out=str(tmp_path / "empty"), progress=False, device="cpu")


def test_a_users_folder_is_not_reported_on_cifake_test(tiny_split, tmp_path, capsys):
    write_split(default_data_root() / "test", {"REAL": 4, "FAKE": 4})  # CIFAKE's test split is there
    r = train(model="model_2", train_path=str(tiny_split), epochs=1, out=str(tmp_path / "run"), progress=False,
              device="cpu")
    assert r["test_metrics"] is None
    err = capsys.readouterr().err
    assert "no test report: " in err and "not a shipped training split" in err


def test_checkpoints_and_history_record_their_provenance(trained_run):
    ck = load_checkpoint(trained_run["result"]["checkpoint"])
    prov = ck["provenance"]
    assert prov["torch"] == torch.__version__ and prov["device"] == "cpu" and prov["precision"] in ("fp32", "bf16")
    assert len(prov["git_commit"]) == 40 and isinstance(prov["git_dirty"], bool)
    assert prov["train_images"] + prov["val_images"] == 128 and prov["train_signature"] != prov["val_signature"]
    history = json.loads((Path(trained_run["result"]["run_dir"]) / "history.json").read_text())
    assert history["provenance"] == prov
    r = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path",
            trained_run["test_dir"], "--json")
    assert json.loads(r.stdout.strip().splitlines()[-1])["provenance"] == prov


def test_the_data_signature_follows_the_pixels_not_the_files():
    from utils.training.provenance import data_signature
    images = np.zeros((4, 3, 32, 32), np.uint8)
    same = data_signature(images, [0, 1, 0, 1], ["REAL", "FAKE"])
    assert data_signature(images.copy(), [0, 1, 0, 1], ["REAL", "FAKE"]) == same
    images[2, 1, 5, 5] = 1
    assert data_signature(images, [0, 1, 0, 1], ["REAL", "FAKE"]) != same


def test_time_to_93_is_reported_per_seed_not_as_the_best_run():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from time_to_accuracy import time_to
    chart = lambda *points: [{"seconds": s, "test_accuracy": a} for s, a in points]  # noqa: E731
    runs = [{"name": f"sprint-seed{k}", "run": "sprint", "seed": k, "chart": c} for k, c in enumerate(
        [chart((27, 0.94), (49, 0.95)), chart((25, 0.92), (47, 0.95)), chart((26, 0.90), (50, 0.949))])]
    runs.append({"name": "best", "run": "best", "seed": 0, "chart": chart((10, 0.99))})  # not a sprint seed
    t = time_to(runs)
    assert t["per_seed"] == {0: 27, 1: 47, 2: 50} and t["mean"] == pytest.approx(41.3) and t["range"] == [27, 50]

"""ONNX export: the graph gives PyTorch's probabilities and labels, and predict.py runs it without torch."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from data import load_folder
from models import probabilities
from tests.test_pipeline import REPO, cli
from utils.inference.checkpoint import load_classifier
from utils.inference.scoring import run_model

pytest.importorskip("onnxruntime")
from utils.inference.onnx_model import OnnxClassifier, OnnxModelError, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    r = cli("export.py", "--checkpoint", trained_run["result"]["checkpoint"], "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_onnx_matches_pytorch_on_the_test_images(trained_run, exported):
    model, ck = load_classifier(trained_run["result"]["checkpoint"])
    test = load_folder(trained_run["test_dir"])
    expected = probabilities(run_model(model, test.images))
    onnx_model = OnnxClassifier(exported)
    for images in (test.images[:], test.images[:].astype(np.float32) / 255):  # uint8, or 0..1 floats
        probs, maps = onnx_model.score(images)
        assert probs.shape == (len(test.labels), 2) and maps is None
        assert np.abs(probs - expected.numpy()).max() <= 1e-4
    # the graph holds the model, not the decision: verdicts are made by utils.inference.verdict on either path
    assert [o.name for o in onnx_model.session.get_outputs()] == ["probabilities"]
    assert onnx_model.classes == ck["classes"]
    assert json.loads(onnx_model.metadata["classes"]) == ["REAL", "FAKE"] and "0..1" in onnx_model.metadata["input"]
    assert float(onnx_model.metadata["temperature"]) == pytest.approx(ck["temperature"])


def test_temperature_and_tta_are_inside_the_graph(trained_run, tmp_path):
    model, ck = load_classifier(trained_run["result"]["checkpoint"])
    model.temperature.fill_(5.0)
    model.tta = "flip-shift"
    export_onnx((model, {**ck, "temperature": 5.0}), tmp_path / "hot.onnx")
    images = load_folder(trained_run["test_dir"]).images[:]
    with torch.no_grad():
        expected = probabilities(model(torch.from_numpy(images))).numpy()
    hot = OnnxClassifier(tmp_path / "hot.onnx")
    probs, _ = hot.score(images)
    assert np.abs(probs - expected).max() <= 1e-4 and probs.max() < 0.99  # softened by T = 5
    assert hot.metadata["tta"] == "flip-shift"


def test_predict_with_onnx_gives_the_checkpoints_lines_without_torch(trained_run, exported, tmp_path):
    paths = [trained_run["test_dir"], tmp_path / "missing.png"]
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.jpg")
    with_torch = cli("predict.py", "--checkpoint", trained_run["result"]["checkpoint"], "--json", *paths)
    with_onnx = cli("predict.py", "--model", exported, "--json", *paths)
    assert with_torch.returncode == with_onnx.returncode == 1  # two files could not be read
    a = [json.loads(line) for line in with_torch.stdout.splitlines()]
    b = [json.loads(line) for line in with_onnx.stdout.splitlines()]
    assert len(a) == len(b) == 64 + 2
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and x["path"] == y["path"] and x.get("label") == y.get("label")
        if "probability" in x:
            assert abs(x["probability"] - y["probability"]) <= 1e-4
    # the ONNX path never imports torch
    code = ("import sys, runpy; sys.argv = ['predict.py', '--model', sys.argv[1], sys.argv[2]];"
            "sys.path.insert(0, '.');\ntry: runpy.run_path('predict.py', run_name='__main__')\n"
            "except SystemExit as e: print('torch' in sys.modules, e.code, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, str(exported), str(trained_run["test_dir"])], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "False 0", r.stderr


def test_a_foreign_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("hello")
    with pytest.raises(OnnxModelError, match="not an ONNX model"):
        OnnxClassifier(bad)
    r = cli("predict.py", "--model", tmp_path / "none.onnx", tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'none.onnx'}: ONNX model not found"

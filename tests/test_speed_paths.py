"""The fast paths give the same answers as the slow ones: ONNX Runtime scoring against the eager forward, the
numpy metrics against scikit-learn's, a validation sample against the whole part; a run says where its time
went; and starting a run does not import what it never uses."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from data import load_folder
from data.batches import training_split
from models import ImageClassifier, build_model
from tests.conftest import REPO
from utils.inference.metrics import classification_metrics, edit_map_metrics, roc_auc
from utils.inference.scoring import ONNX_MIN_IMAGES, run_model, scoring_engine


def _trained_like(name, classes=2):
    """A network with BatchNorm statistics that are not the initial ones (as after training)."""
    torch.manual_seed(0)
    model = ImageClassifier(build_model(name, classes), [0.5] * 3, [0.25] * 3).train()
    with torch.no_grad():
        model(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8))
    return model.eval()


@pytest.mark.parametrize("name,classes,tta", [("model_2", 2, "flip-shift"), ("edit_map_srm", 3, "flip")])
def test_onnx_runtime_scores_as_the_eager_forward_does(name, classes, tta):
    model = _trained_like(name, classes)
    model.tta = tta
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8)
    with_map = model.has_edit_map
    eager = run_model(model, images, engine="eager", with_map=with_map)
    onnx = run_model(model, images, engine="onnxruntime", with_map=with_map)
    for a, b in zip(*(x if with_map else (x,) for x in (eager, onnx))):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4)
    logits = (eager[0], onnx[0]) if with_map else (eager, onnx)
    assert torch.equal(logits[0].argmax(1) if classes > 2 else logits[0] > 0,
                       logits[1].argmax(1) if classes > 2 else logits[1] > 0)


def test_onnx_runtime_scores_a_cached_split_on_disk_as_eager_does(tiny_split):
    # a cache hands over numpy rows: the exported graph must still take them as the uint8 images they are
    from data import load_folder
    model = _trained_like("model_2", 2)
    images = load_folder(tiny_split, verbose=False).images
    eager = run_model(model, torch.from_numpy(images[:]), engine="eager")
    assert torch.allclose(run_model(model, images, engine="onnxruntime"), eager, atol=1e-4)


def test_an_exported_graph_is_kept_for_the_same_model_and_made_anew_for_any_change(monkeypatch):
    import os
    from pathlib import Path

    import utils.inference.scoring as scoring
    exports = []
    real = scoring._export
    monkeypatch.setattr(scoring, "_export", lambda *a: exports.append(1) or real(*a))
    model = _trained_like("model_2")
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    first = run_model(model, images, engine="onnxruntime")
    again = run_model(model, images, engine="onnxruntime")  # read from the cache folder: no export
    assert len(exports) == 1 and torch.equal(first, again)
    model.temperature.fill_(2.0)  # not in the state dict, but in the graph
    assert torch.allclose(run_model(model, images, engine="onnxruntime"), first / 2, atol=1e-5) and len(exports) == 2
    small = images[:, :, :24, :24]  # another input shape: another graph (model_2's does not export: eager)
    assert torch.equal(run_model(model, small, engine="onnxruntime"), run_model(model, small, engine="eager"))
    assert len(exports) == 3 and not model.training  # an export, failed or not, leaves the model as it was
    kept = Path(os.environ["AIC_CACHE_DIR"]) / "onnx"
    (kept / f"{scoring.graph_key(model, False, images[:2])}.onnx").write_bytes(b"damaged")
    assert torch.allclose(run_model(model, images, engine="onnxruntime"), first / 2, atol=1e-5)
    assert len(exports) == 4  # a damaged file is exported again, not trusted
    monkeypatch.setattr(scoring, "ONNX_CACHE_FILES", 2)
    for _ in range(2):
        model.temperature.add_(1.0)
        run_model(model, images, engine="onnxruntime")
    assert len(list(kept.glob("*.onnx"))) == 2  # only the newest are kept


def test_the_engine_is_onnx_runtime_only_for_a_large_set_on_a_cpu():
    model = _trained_like("model_2")
    assert scoring_engine(model, "cpu", ONNX_MIN_IMAGES) == "onnxruntime"
    assert scoring_engine(model, "cpu", ONNX_MIN_IMAGES - 1) == "eager"  # the export would cost more
    assert scoring_engine(model, "cuda", 10 ** 6) == "eager"
    assert scoring_engine(model.to(torch.bfloat16), "cpu", 10 ** 6) == "eager"  # exported graphs are fp32
    with pytest.raises(ValueError, match="unknown scoring engine"):
        scoring_engine(model, "cpu", 10, "tensorrt")


def test_numpy_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    for classes in (2, 3):
        labels = rng.integers(0, classes, 400)
        probs = rng.random((400, classes)).round(2)  # rounded: many ties, which the ROC-AUC counts half
        probs /= probs.sum(1, keepdims=True)
        preds = rng.integers(0, classes, 400)
        got = classification_metrics(labels, probs, [str(c) for c in range(classes)], predictions=preds)
        avg = dict(average="binary") if classes == 2 else dict(average="macro")
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds))
        for key, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            assert got[key] == pytest.approx(fn(labels, preds, zero_division=0, **avg)), key
        assert got["confusion_matrix"] == skm.confusion_matrix(labels, preds).tolist()
        expected = (skm.roc_auc_score(labels, probs[:, 1]) if classes == 2
                    else skm.roc_auc_score(labels, probs, multi_class="ovr"))
        assert got["roc_auc"] == pytest.approx(expected)
        f1 = skm.f1_score(labels, preds, average=None, zero_division=0)
        assert [got["per_class"][str(c)]["f1"] for c in range(classes)] == pytest.approx(f1.tolist())
    maps = rng.random((20, 8, 8)).round(1)
    masks = rng.random((20, 8, 8)) < 0.3
    assert edit_map_metrics(maps, masks)["pixel_roc_auc"] == pytest.approx(skm.roc_auc_score(masks.ravel(),
                                                                                             maps.ravel()))
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_auc(np.ones(3, bool), np.arange(3))


def test_a_validation_sample_is_seeded_and_drawn_from_the_whole_part(tiny_split):
    folder = load_folder(tiny_split, verbose=False)
    whole = training_split(folder, 0.5, 0)
    sample = training_split(folder, 0.5, 0, max_val_images=10)
    assert len(sample.val_labels) == 10 and np.array_equal(sample.train_idx, whole.train_idx)
    picked = {bytes(x.numpy()) for x in sample.val_images}
    assert picked <= {bytes(x.numpy()) for x in whole.val_images}
    again = training_split(folder, 0.5, 0, max_val_images=10)
    assert torch.equal(again.val_images, sample.val_images)


def test_a_run_says_where_its_time_went(trained_run):
    result = trained_run["result"]
    stages = result["stage_seconds"]
    assert {"data", "set-up", "training", "validation", "outside fit", "test report"} <= set(stages)
    assert all(v >= 0 for v in stages.values())
    assert stages["training"] == pytest.approx(sum(r["train_seconds"] for r in result["history"]))
    history = json.loads((trained_run["base"] / "out" / "history.json").read_text())
    assert history["stage_seconds"] == pytest.approx(stages)


def test_starting_a_run_imports_neither_torchvision_nor_scikit_learn():
    """torchvision pulls in torch._dynamo (~1.5 s) and scikit-learn takes ~1.3 s: a run that never augments
    or plots reaches its first step without them."""
    code = ("import sys, train, utils.training.run, utils.inference.evaluation, utils.inference.metrics; "
            "print([m for m in ('torchvision', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

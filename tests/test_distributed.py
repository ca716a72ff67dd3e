"""torchrun: a 2-process gloo run on the CPU trains like a single process and writes one run folder."""
import json
import os
import subprocess
import sys

import numpy as np

from data import load_folder, split_train_val
from tests.conftest import write_split
from tests.test_pipeline import REPO, cli
from utils.checkpoint import load_classifier
from utils.inference import run_model
from utils.metrics import classification_metrics
from models import probabilities


def test_two_gloo_processes_train_once_over_disjoint_shards(tmp_path):
    train_dir = write_split(tmp_path / "train", {"REAL": 60, "FAKE": 61}, seed=3)
    test_dir = write_split(tmp_path / "test", {"REAL": 20, "FAKE": 21}, seed=4)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(REPO / "train.py"), "--train-path", train_dir, "--test-path", test_dir, "--epochs", "3",
                        "--batch-size", "16", "--lr", "2e-3", "--out", out, "--device", "cpu", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DistributedDataParallel over 2 processes (gloo)" in r.stderr
    assert r.stdout.count("run folder:") == 1 and r.stderr.count("epoch 1/3") == 1  # rank 0 alone speaks
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.json", "last.pt", "test_metrics.json"]

    history = json.loads((out / "history.json").read_text())
    folder = load_folder(train_dir)
    train_idx, val_idx = split_train_val(folder.labels, 0.1, seed=0)
    assert [row["train_images"] for row in history["history"]] == [len(train_idx)] * 3  # each image once an epoch

    # the checkpoint loads in a single process; its validation metrics are what the two ranks agreed on
    model, ck = load_classifier(out / "checkpoint.pt")
    val_probs = probabilities(run_model(model, folder.images[val_idx])).numpy()
    recomputed = classification_metrics(folder.labels[val_idx], val_probs, ck["classes"])
    assert recomputed["accuracy"] == ck["val_metrics"]["accuracy"] == history["best_val"]["accuracy"]
    assert recomputed["n"] == len(val_idx)
    assert np.isclose(recomputed["roc_auc"], ck["val_metrics"]["roc_auc"])
    ev = cli("evaluate.py", "--checkpoint", out / "checkpoint.pt", "--test-path", test_dir, "--json")
    single = json.loads(ev.stdout.strip().splitlines()[-1])
    reduced = json.loads((out / "test_metrics.json").read_text())
    assert single["n"] == reduced["n"] == 41
    assert single["accuracy"] == reduced["accuracy"] and single["confusion_matrix"] == reduced["confusion_matrix"]

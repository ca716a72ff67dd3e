"""torchrun: a 2-process gloo run on the CPU trains like a single process and writes one run folder."""
import json
import os
import subprocess
import sys

import numpy as np

from data import load_folder, split_train_val
from models import probabilities
from tests.conftest import write_split
from tests.test_pipeline import REPO, cli
from utils.inference.checkpoint import load_classifier
from utils.inference.metrics import classification_metrics
from utils.inference.scoring import run_model

# train.py, with checkpoint reads forbidden on every rank but 0: on several nodes without a shared run folder
# only rank 0 can see the files it wrote, so the others must get what they need by broadcast
GUARDED_TRAIN = """
import sys
import torch.distributed as dist
import utils.inference.checkpoint, utils.training.loop, utils.training.run
real = utils.inference.checkpoint.load_checkpoint
def guarded(path, *args, **kwargs):
    if dist.is_initialized() and dist.get_rank() > 0:
        raise RuntimeError(f"rank {dist.get_rank()} read {path}, a file only rank 0 wrote")
    return real(path, *args, **kwargs)
for module in (utils.inference.checkpoint, utils.training.loop, utils.training.run):
    if hasattr(module, "load_checkpoint"):
        module.load_checkpoint = guarded
import train
from utils import cli
cli.run(train.main)
"""


def test_two_gloo_processes_train_once_over_disjoint_shards(tmp_path):
    train_dir = write_split(tmp_path / "train", {"REAL": 60, "FAKE": 61}, seed=3)
    test_dir = write_split(tmp_path / "test", {"REAL": 20, "FAKE": 21}, seed=4)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = tmp_path / "guarded_train.py"
    launcher.write_text(GUARDED_TRAIN)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(launcher), "--train-path", train_dir, "--test-path", test_dir, "--epochs", "3",
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


def test_ranks_draw_one_order_but_their_own_augmentation():
    """Disjoint shards of one permutation, but flips drawn per rank: with one seed for all ranks they were the
    same draws on every rank (correlated augmentation across the global batch)."""
    import torch

    from data import Batches
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    images[:, :, :, 0] = 255  # a bright left column shows whether an image was mirrored
    labels = torch.arange(64) % 2

    def draws(rank):
        b = Batches(images, labels, batch_size=8, shuffle=True, seed=5, hflip=True, rank=rank, world_size=2)
        return [(x[:, 0, 0, 0] == 255).tolist() for x, _ in b]
    rank0, rank1 = draws(0), draws(1)
    assert rank0 != rank1
    single = Batches(images, labels, batch_size=8, shuffle=True, seed=5, hflip=True)
    assert [(x[:, 0, 0, 0] == 255).tolist() for x, _ in single]  # a world of one still draws (rank 0's stream)

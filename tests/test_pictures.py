"""Figures and the choice of examples, on the tiny trained run (no shipped data needed)."""
import numpy as np
from PIL import Image

from tests.test_pipeline import cli
from utils.inference.evaluation import confident_mistakes, random_examples


def test_confident_mistakes_are_wrong_and_sorted():
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.05, 0.95], [0.7, 0.3], [0.1, 0.9]])
    assert confident_mistakes(labels, probs, 0, 5) == [2, 0]  # REAL given FAKE, surest first
    assert confident_mistakes(labels, probs, 1, 5) == [3]
    assert confident_mistakes(labels, probs, 1, 0) == []


def test_random_examples_are_of_the_class_and_seeded():
    labels = np.array([0, 1] * 50)
    picked = random_examples(labels, 1, 4, seed=3)
    assert len(picked) == 4 and all(labels[i] == 1 for i in picked)
    assert picked == random_examples(labels, 1, 4, seed=3) != random_examples(labels, 1, 4, seed=4)


def test_visualize_writes_every_picture(trained_run, tmp_path):
    r = cli("visualize.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path",
            trained_run["test_dir"], "--out", tmp_path / "fig", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "fig").glob("*.png")}
    assert {"curves.png", "confusion.png", "roc.png", "grid_real.png", "grid_fake.png", "grid_random.png",
            "gradcam.png"} <= names
    grid = np.asarray(Image.open(tmp_path / "fig" / "grid_real.png").convert("RGB"))
    assert grid.shape[0] > 200 and grid.std() > 10  # a real picture, not a blank canvas

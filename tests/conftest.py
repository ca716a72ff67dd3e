"""Shared fixtures: a tiny generated dataset whose two classes a model can tell apart in seconds."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHIPPED_ARCHIVE = REPO.parent / "shared" / "datasets" / "cifake-seed.tar.gz"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own cache and data root, so nothing touches the repo's images/ or .cache/."""
    monkeypatch.setenv("AIC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("AIC_DATA_ROOT", str(tmp_path_factory.mktemp("images")))


def synthetic_image(cls: str, rng) -> np.ndarray:
    """REAL: smooth colour gradients; FAKE: the same with a fine checkerboard (a 'generator artefact');
    EDITED: a gradient with one flat grey patch."""
    y, x = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([rng.uniform(0.2, 0.8) + rng.uniform(-0.2, 0.2) * x,
                     rng.uniform(0.2, 0.8) + rng.uniform(-0.2, 0.2) * y,
                     np.full((32, 32), rng.uniform(0.2, 0.8))], axis=-1)
    if cls == "FAKE":
        base = base + 0.15 * (((np.indices((32, 32)).sum(0)) % 2)[..., None] - 0.5)
    elif cls == "EDITED":
        r, c = rng.integers(0, 20, 2)
        base[r:r + 12, c:c + 12] = 0.5
    return (np.clip(base, 0, 1) * 255).astype(np.uint8)


def write_split(root: Path, per_class: dict, seed=0, fmt="PNG") -> Path:
    rng = np.random.default_rng(seed)
    for cls, n in per_class.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(synthetic_image(cls.upper(), rng)).save(d / f"{i:04d}.{fmt.lower()}", fmt)
    return root


@pytest.fixture
def tiny_split(tmp_path):
    """REAL/FAKE, 48 images each (PNG, so the checkerboard survives)."""
    return write_split(tmp_path / "tiny-train", {"REAL": 48, "FAKE": 48}, seed=1)


@pytest.fixture
def tiny_test(tmp_path):
    return write_split(tmp_path / "tiny-test", {"REAL": 24, "FAKE": 24}, seed=2)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One short training run shared by the round-trip tests (seconds on a CPU)."""
    from utils.training.run import train
    base = tmp_path_factory.mktemp("run")
    os.environ.setdefault("AIC_CACHE_DIR", str(base / "cache"))
    train_dir = write_split(base / "train", {"REAL": 64, "FAKE": 64}, seed=3)
    test_dir = write_split(base / "test", {"REAL": 32, "FAKE": 32}, seed=4)
    result = train(model="model_2", train_path=str(train_dir), test_path=str(test_dir), epochs=4,
                   batch_size=32, lr=2e-3, out=str(base / "out"), progress=False, device="cpu")
    return {"result": result, "train_dir": train_dir, "test_dir": test_dir, "base": base}


@pytest.fixture(scope="session")
def shipped_root(tmp_path_factory):
    """The shipped archive prepared once for the whole session (unpacked, every derived split made)."""
    if not SHIPPED_ARCHIVE.is_file():
        pytest.skip(f"shipped archive {SHIPPED_ARCHIVE} absent")
    from data import prepare
    root = tmp_path_factory.mktemp("shipped")
    prepare(SHIPPED_ARCHIVE, root, verbose=False)
    return root

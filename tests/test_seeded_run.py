"""A seeded CPU run computes what it computed before the training code was split into parts: the validation
metrics of every epoch, the calibration temperature and the tuned threshold match the figures recorded in
tests/golden/seeded_runs.json by the single 238-line train() of commit a4012ee (fp32, so the only slack is
the last bits that differ between CPU kernels)."""
import json
from pathlib import Path

import pytest

from tests.conftest import write_split
from utils.checkpoint import load_checkpoint
from utils.training import train

GOLDEN = Path(__file__).parent / "golden" / "seeded_runs.json"
RUNS = {
    "model_2-plain": dict(model="model_2", epochs=3, batch_size=32),
    "fullres-recipe": dict(model="fullres_cnn", epochs=4, batch_size=16, lr=3e-3, ema=0.9, robust=0.3,
                           crop_padding=2, label_smoothing=0.1, whiten=True, tta="flip", tune_threshold=True),
}


def seeded_run(name, base: Path) -> dict:
    train_dir = write_split(base / "train", {"REAL": 80, "FAKE": 80}, seed=11)
    result = train(train_path=str(train_dir), test_path="none", out=str(base / name), progress=False,
                   device="cpu", precision="fp32", seed=3, **RUNS[name])
    ck = load_checkpoint(result["checkpoint"])
    return {"history": [{k: row[k] for k in ("train_loss", "val_loss", "val_accuracy", "val_roc_auc")}
                        for row in result["history"]],
            "temperature": ck["temperature"], "threshold": ck.get("threshold")}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_seeded_run_matches_the_recorded_one(name, tmp_path):
    recorded = json.loads(GOLDEN.read_text())[name]
    got = seeded_run(name, tmp_path)
    assert len(got["history"]) == len(recorded["history"])
    for row, want in zip(got["history"], recorded["history"]):
        assert row["val_accuracy"] == want["val_accuracy"]
        for key in ("train_loss", "val_loss", "val_roc_auc"):
            assert row[key] == pytest.approx(want[key], rel=1e-3, abs=1e-4), key
    assert got["temperature"] == pytest.approx(recorded["temperature"], rel=1e-3)
    assert got["threshold"] == pytest.approx(recorded["threshold"], rel=1e-3, abs=1e-4) if recorded["threshold"] \
        else got["threshold"] is None


if __name__ == "__main__":  # records the golden figures (run once, on the code the refactor must match)
    import sys
    import tempfile
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps({n: seeded_run(n, Path(tmp) / n) for n in sorted(RUNS)}, indent=1) + "\n")

"""A user's small dataset at its own size: a run crops by default (a trace that only full-resolution pixels
hold survives), learns it, and answers with it; a run that learned something it does not answer with says so."""
import numpy as np
from PIL import Image

from data.images import default_resize
from utils.inference.checkpoint import load_checkpoint
from utils.inference.predict import score_images
from utils.training.config import make_config
from utils.training.diagnosis import best_cut_accuracy, diagnose


def textured(rng, size) -> Image.Image:
    """Smooth colour shapes with grain at the scale of one pixel: the grain is what a 2x down-and-up removes, and
    what a view shrunk 2x averages away too."""
    small = Image.fromarray(rng.integers(60, 196, (6, 6, 3), dtype=np.uint8))
    smooth = np.asarray(small.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    image = smooth + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def write_resampled_split(root, per_class, size=96, seed=0):
    """REAL: textures; FAKE: textures after a 2x bicubic down-and-up, which leaves the coarse picture and takes the
    finest detail: a trace that a view shrunk 2x cannot hold. PNG for both: the same file history."""
    rng = np.random.default_rng(seed)
    for cls in ("REAL", "FAKE"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = textured(rng, size)
            if cls == "FAKE":
                im = im.resize((size // 2, size // 2), Image.Resampling.BICUBIC).resize(
                    (size, size), Image.Resampling.BICUBIC)
            im.save(root / cls / f"{i:04d}.png")
    return root


def test_a_run_at_another_size_crops_unless_told_to_shrink():
    assert make_config().resize == "shrink" and default_resize(32) == "shrink"  # CIFAKE's 32 px, as shipped
    assert make_config(image_size=48).resize == "crop" and default_resize(256) == "crop"
    assert make_config(image_size=48, resize="shrink").resize == "shrink"


def test_a_small_dataset_at_its_own_size_is_learned_and_answered(tmp_path):
    from data import load_folder
    from utils.training.run import train
    train_dir = write_resampled_split(tmp_path / "train", 120, seed=1)
    test_dir = write_resampled_split(tmp_path / "test", 40, seed=2)
    result = train(model="model_2", train_path=str(train_dir), test_path="none", image_size=48, epochs=6,
                   seed=0, out=str(tmp_path / "run"), progress=False, device="cpu")
    ck = load_checkpoint(result["checkpoint"])
    assert (ck["resize"], ck["image_size"]) == ("crop", 48)
    test = load_folder(test_dir, verbose=False, image_size=48, resize="crop")
    scored = score_images(result["checkpoint"], test.images[:])
    fake = scored["classes"].index("FAKE")
    truth = np.asarray(test.labels) == test.classes.index("FAKE")
    accuracy = float(np.mean((scored["predictions"] == fake) == truth))
    assert accuracy >= 0.75, accuracy
    assert accuracy >= best_cut_accuracy(truth, scored["probs"][:, fake]) - 0.05  # the cut is where the ranking says
    assert result["warnings"] == []


def test_a_run_that_does_not_answer_says_so_and_what_to_try():
    labels = np.array([0, 1] * 50)
    ranked_but_one_sided = np.stack([0.4 - 0.2 * labels, 0.6 + 0.2 * labels], 1)  # all FAKE, ranked right
    said = diagnose(0.95, labels, ranked_but_one_sided)
    assert len(said) == 2 and "at chance" in said[0] and "--tune-threshold" in said[1]
    answered = np.stack([0.8 - 0.6 * labels, 0.2 + 0.6 * labels], 1)
    assert diagnose(0.95, labels, answered) == []
    assert best_cut_accuracy(labels, ranked_but_one_sided[:, 1]) == 1.0
    assert best_cut_accuracy(labels, np.full(100, 0.5)) == 0.5  # one score: one side of any cut


def test_batchnorm_statistics_are_measured_again_for_the_weights_that_are_saved():
    """After a few large steps the running averages trail the weights; measured again on the training images, the
    evaluation-mode network normalises those images exactly as training mode does, and nothing else changes."""
    import torch

    from models import ImageClassifier, build_model
    from utils.training.batchnorm import batchnorm_layers, remeasure_batchnorm
    torch.manual_seed(0)
    model = ImageClassifier(build_model("model_2"), [0.5] * 3, [0.25] * 3)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(3):  # large steps: the weights move far between batches
        optimizer.zero_grad()
        model(images[:32]).sum().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        stale = model(images)
        remeasure_batchnorm(model, images, "cpu")
        fresh = model(images)
        for m in model.modules():  # batch statistics of the same 64 images, dropout off
            if m in batchnorm_layers(model):
                m.train()
        batch_stats = model(images)
    model.eval()
    assert not torch.allclose(stale, fresh, atol=1e-3)
    assert torch.allclose(fresh, batch_stats, rtol=1e-3, atol=1e-3)
    assert not model.training and all(m.momentum == 0.1 for m in batchnorm_layers(model))


def test_a_run_resumes_only_at_the_view_it_trained_on(tmp_path):
    import pytest

    from data import DataError
    from utils.training.run import train
    train_dir = write_resampled_split(tmp_path / "train", 16, seed=3)
    common = dict(model="fullres_cnn", train_path=str(train_dir), test_path="none", image_size=48, batch_size=8,
                  out=str(tmp_path / "run"), progress=False, device="cpu")
    train(epochs=1, resize="shrink", **common)
    with pytest.raises(DataError, match="--resize shrink resumes it"):
        train(epochs=2, resume=True, **common)  # the default at 48 px crops
    assert len(train(epochs=2, resume=True, resize="shrink", **common)["history"]) == 2

"""The stronger model and its recipe: registry, label smoothing, EMA, flip TTA, precision choice,
robust-training augmentation, perturbed test sets and the robustness table."""
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data import DataError, load_folder
from data.degradations import BIAS_CHANGES, DEGRADATIONS, TEST_COPIES, down_up, jpeg, robust_augment
from data.perturbed import build_perturbed_split, build_perturbed_splits
from models import ImageClassifier, build_model, count_parameters, fit_temperature, loss_function
from models.whitening import first_conv, patch_whitening_filters, whiten_first_conv
from tests.conftest import synthetic_image, write_split
from tests.test_pipeline import cli
from utils.inference.checkpoint import load_checkpoint, load_classifier
from utils.training.budget import epochs_for_budget, replan_epochs
from utils.training.config import make_config
from utils.training.optimization import update_ema
from utils.training.precision import choose_precision
from utils.training.run import train
from utils.training.training_data import channel_stats


def test_fullres_cnn_is_registered_small_and_keeps_full_resolution_first():
    net = build_model("fullres_cnn")
    assert count_parameters(net) == 146_417  # a tenth of model_2's 1,454,081
    seen = []
    net.features[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 1)
    assert seen == [(2, 16, 32, 32)]  # the second convolution still sees every pixel
    assert build_model("fullres_cnn", 3)(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_label_smoothing_moves_the_targets():
    logits, labels = torch.tensor([[20.0], [-20.0]]), torch.tensor([1, 0])
    assert float(loss_function(2)(logits, labels)) < 1e-6
    # with smoothing 0.2 the targets are 0.9 and 0.1: a saturated logit now costs about 0.1 * 20
    assert float(loss_function(2, label_smoothing=0.2)(logits, labels)) == pytest.approx(2.0, rel=0.05)
    ce = loss_function(3, label_smoothing=0.3)(torch.tensor([[30.0, 0, 0]]), torch.tensor([0]))
    assert float(ce) > 1.0


def test_ema_follows_the_weights_with_warmup():
    model, ema = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        ema.weight.zero_()
        model.weight.fill_(1.0)
    update_ema(ema, model, decay=0.999, step=0)  # warm-up decay (1 + 0) / (10 + 0) = 0.1
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.9))
    update_ema(ema, model, decay=0.5, step=10_000)
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.95))


def test_tta_modes_average_the_views_they_name():
    torch.manual_seed(0)
    model = ImageClassifier(build_model("fullres_cnn"), [0.5] * 3, [0.25] * 3).eval()
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    padded = torch.nn.functional.pad(x.float(), (1, 1, 1, 1), mode="reflect")
    down_right, up_left = padded[:, :, 2:, 2:], padded[:, :, :-2, :-2]  # pixel (i, j) <- (i+1, j+1) / (i-1, j-1)
    assert torch.equal(down_right[:, :, :-1, :-1], x[:, :, 1:, 1:].float())
    with torch.no_grad():
        plain, mirrored = model(x), model(x.flip(3))
        shifted = [model(v / 255) for v in (down_right, up_left)]
        shifted += [model(v.flip(3) / 255) for v in (down_right, up_left)]
        model.tta = "flip"
        flip = model(x)
        model.tta = "flip-shift"
        flip_shift = model(x)
        calls = []
        model.net.register_forward_hook(lambda *_: calls.append(1))
        for mode, passes in [("none", 1), ("flip", 2), ("flip-shift", 6)]:
            model.tta, calls[:] = mode, []
            model(x)
            assert len(calls) == passes
        model.train()
        calls.clear()
        model(x)
        assert len(calls) == 1  # training sees one view
    assert torch.allclose(flip, (plain + mirrored) / 2, atol=1e-5)
    assert torch.allclose(flip_shift, (plain + mirrored) / 4 + sum(shifted) / 8, atol=1e-5)
    assert not torch.allclose(flip_shift, flip, atol=1e-4)
    with pytest.raises(ValueError, match="flip-shift"):
        model.tta = "rotate"


def test_precision_falls_back_to_fp32_without_native_bf16(monkeypatch):
    import utils.training.precision as precision
    model = ImageClassifier(build_model("fullres_cnn"), [0.5] * 3, [0.25] * 3)
    batch = (torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 2, (8,)))
    messages = []
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    ctx, scaler = choose_precision(make_config(), torch.device("cpu"), model, loss_function(2), batch, messages.append)
    assert not ctx._enabled and scaler is None and "fp32" in messages[-1]
    # native bf16 claimed: the choice is measured, and the weights are left as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    choose_precision(make_config(), torch.device("cpu"), model, loss_function(2), batch, messages.append)
    assert "measured" in messages[-1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ctx, _ = choose_precision(make_config(precision="bf16"), torch.device("cpu"), model, loss_function(2), batch,
                              messages.append)
    assert ctx._enabled and ctx.fast_dtype == torch.bfloat16


def test_temperature_stays_bounded_on_a_perfectly_separated_validation_set():
    # timid but always right: the NLL keeps falling as T -> 0, so the fit would sharpen without end
    logits, labels = torch.tensor([[0.05], [-0.05]] * 10), torch.tensor([1, 0] * 10)
    assert fit_temperature(logits, labels) == pytest.approx(0.05)


def test_robust_augment_hits_about_the_asked_share_and_keeps_shape():
    x = torch.randint(0, 256, (400, 3, 32, 32), dtype=torch.uint8)
    out = robust_augment(x, torch.Generator().manual_seed(0), 0.3)
    assert out.shape == x.shape and out.dtype == torch.uint8
    changed = (out != x).flatten(1).any(1).float().mean()
    trained = sum(d.train_range is not None for d in DEGRADATIONS.values())
    expected = 1 - 0.7 ** trained  # each image gets at least one of the trained degradations this often
    assert expected - 0.1 < changed < min(expected + 0.1, 1.0)
    assert torch.equal(robust_augment(x, torch.Generator().manual_seed(0), 0.0), x)


def test_robust_training_and_the_test_copies_read_one_table(monkeypatch):
    trained = [k for k, d in DEGRADATIONS.items() if d.train_range]
    assert trained == ["jpeg", "resize", "blur", "noise", "gamma", "cifake_jpeg"]
    assert {kind for kind, _ in TEST_COPIES.values()} <= set(DEGRADATIONS)
    # the bias table measures kinds that training never draws, beside the trained ones
    bias_kinds = {kind for kind, _ in BIAS_CHANGES.values()}
    assert bias_kinds <= set(DEGRADATIONS) and bias_kinds - set(trained) and bias_kinds & set(trained)
    # narrowing the table's blur range to one strength changes what robust training draws
    calls = []
    blur = DEGRADATIONS["blur"]
    monkeypatch.setitem(DEGRADATIONS, "blur", blur.__class__(blur.about, lambda x, s, g: calls.append(s) or x,
                                                             (0.5, 0.5)))
    robust_augment(torch.zeros(64, 3, 32, 32, dtype=torch.uint8), torch.Generator().manual_seed(0), 0.5)
    assert calls == [0.5]


def test_a_changed_recipe_rebuilds_a_perturbed_copy(tmp_path, monkeypatch):
    root = tmp_path / "images"
    write_split(root / "test", {"REAL": 3, "FAKE": 3}, seed=8)
    path = build_perturbed_split(root, "test", "noise", verbose=False)
    first = {p.name: p.read_bytes() for p in (path / "FAKE").iterdir()}
    mtime = path.stat().st_mtime_ns
    assert build_perturbed_split(root, "test", "noise", verbose=False).stat().st_mtime_ns == mtime  # fresh: kept
    import data.perturbed
    monkeypatch.setattr(data.perturbed, "SEED", 7)  # another noise draw: the recipe changed
    build_perturbed_split(root, "test", "noise", verbose=False)
    assert {p.name: p.read_bytes() for p in (path / "FAKE").iterdir()} != first
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_degradations_are_what_they_say():
    smooth = torch.linspace(0, 255, 32).round().to(torch.uint8).view(1, 1, 1, 32).expand(2, 3, 32, 32).contiguous()
    error = (down_up(smooth, 16).float() - smooth.float()).abs()
    assert error[..., 2:-2].max() <= 2 and error.max() <= 8  # a ramp survives down/up (edges clamp a little)
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32)) % 2 * 255).to(torch.uint8).expand(2, 3, 32, 32)
    assert down_up(checker.contiguous(), 16).float().std() < 20  # finest detail is gone
    assert (jpeg(checker.contiguous(), 50).float() - checker.float()).abs().mean() > 5


def test_perturbed_splits_and_the_robustness_table(trained_run, tmp_path):
    root = tmp_path / "images"
    write_split(root / "test", {"REAL": 10, "FAKE": 10}, seed=8)
    with pytest.raises(DataError, match="(?s)nothing.*prepare.py"):
        build_perturbed_splits(root, "nothing")
    r = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path", root / "test",
            "--robustness")
    assert r.returncode == 2 and "prepare.py --perturb tiny" not in r.stderr and "prepare.py --perturb test" in r.stderr
    assert not (root / "test-jpeg75").exists()  # a lookup writes nothing
    build_perturbed_splits(root, "test", verbose=False)
    jpgs = sorted((root / "test-jpeg75" / "FAKE").iterdir())
    assert len(jpgs) == 10 and all(p.suffix == ".jpg" for p in jpgs)
    assert load_folder(root / "test-resize").labels.tolist() == load_folder(root / "test").labels.tolist()
    r = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path", root / "test",
            "--robustness", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout.strip().splitlines()[-1])["robustness"]
    assert [row["set"] for row in rows] == ["test"] + [f"test-{k}" for k in TEST_COPIES]
    assert all(row["n"] == 20 for row in rows) and rows[0]["accuracy_change"] == 0
    flip = next(row for row in rows if row["set"] == "test-flip")
    assert flip["accuracy_change"] == pytest.approx(flip["accuracy"] - rows[0]["accuracy"])
    table = cli("evaluate.py", "--checkpoint", trained_run["result"]["checkpoint"], "--test-path", root / "test",
                "--robustness")
    assert "test-jpeg50" in table.stdout and "re-saved as JPEG quality 50" in table.stdout


def test_robustness_on_the_checkpoints_own_validation_images(trained_run):
    checkpoint = trained_run["result"]["checkpoint"]
    r = cli("evaluate.py", "--checkpoint", checkpoint, "--robustness", "--validation", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    rows = out["robustness"]
    assert out["test_path"] == "validation"
    assert [row["set"] for row in rows] == ["validation"] + [f"validation-{k}" for k in TEST_COPIES]
    val = load_checkpoint(checkpoint)["val_metrics"]
    # the same images that chose the checkpoint: 10% of each class of the 64/64 training folder
    assert all(row["n"] == val["n"] == 12 for row in rows)
    assert rows[0]["accuracy"] == pytest.approx(val["accuracy"])
    resize = next(row for row in rows if row["set"] == "validation-resize")
    assert resize["accuracy_change"] == pytest.approx(resize["accuracy"] - rows[0]["accuracy"])
    usage = cli("evaluate.py", "--checkpoint", checkpoint, "--validation")
    assert usage.returncode == 2 and "--validation goes with --robustness" in usage.stderr


def test_whitening_filters_decorrelate_the_patches():
    gen = torch.Generator().manual_seed(0)
    smooth = F.avg_pool2d(torch.randn(64, 1, 32, 32, generator=gen), 3, 1, 1)  # neighbours strongly correlated
    x = torch.cat([smooth, 0.5 * smooth, torch.zeros_like(smooth)], 1)
    x = x + 0.05 * torch.randn(64, 3, 32, 32, generator=gen)
    filters = patch_whitening_filters(x, (3, 3), eps=1e-9)
    assert filters.shape == (27, 3, 3, 3)
    z = F.conv2d(x.double(), filters.double()).permute(0, 2, 3, 1).reshape(-1, 27)
    z = z - z.mean(0)
    assert torch.allclose(z.T @ z / len(z), torch.eye(27, dtype=torch.double), atol=1e-3)
    norms = filters.flatten(1).norm(dim=1)  # 1 / sqrt(eigenvalue): the largest-variance direction first
    assert bool((norms[1:] >= norms[:-1] * (1 - 1e-4)).all()) and norms[-1] > 10 * norms[0]


@pytest.mark.parametrize("name, pairs, filters", [("fullres_cnn", 8, 16), ("model_2", 27, 64)])
def test_whitening_starts_the_first_convolution_from_signed_pairs(name, pairs, filters):
    rng = np.random.default_rng(0)
    images = np.stack([synthetic_image(c, rng) for c in ("REAL", "FAKE") * 40])
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    model = ImageClassifier(build_model(name), *channel_stats(images.numpy()))
    before = first_conv(model.net).weight.detach().clone()
    line = whiten_first_conv(model, images, n_images=50)
    w = first_conv(model.net).weight.detach()
    assert f"{2 * pairs} of {filters} filters" in line and "of 50 training images" in line
    assert torch.allclose(w[:pairs], -w[pairs:2 * pairs])
    assert torch.equal(w[2 * pairs:], before[2 * pairs:])  # beyond the pairs: the default filters
    assert not torch.allclose(w[:pairs], before[:pairs])
    assert float(w[:2 * pairs].flatten(1).norm(dim=1).mean()) == pytest.approx(
        float(before.flatten(1).norm(dim=1).mean()), rel=1e-4)  # the default initialisation's scale
    # whitened, every filter answers with the same spread; their directions are the patches' principal axes,
    # the one of largest variance first
    directions = w[:pairs] / w[:pairs].flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    spread = F.conv2d((images.float() / 255 - model.mean) / model.std, directions).std(dim=(0, 2, 3))
    assert int(spread.argmax()) == 0 and float(spread[0]) > 3 * float(spread[-1])


def test_whitening_is_a_training_option_that_the_checkpoint_records(tiny_split, tmp_path, capsys):
    # model_2's 64 first filters hold all 27 directions of a 3x3 patch, the tiny data's checkerboard included
    r = train(model="model_2", train_path=str(tiny_split), test_path="none", epochs=3, batch_size=16, lr=3e-3,
              whiten=True, out=str(tmp_path / "run"), progress=False, device="cpu")
    assert "first convolution's 54 of 64 filters set to +- the 27 leading of 27" in capsys.readouterr().err
    assert load_checkpoint(r["checkpoint"])["config"]["whiten"] is True
    assert r["best_val"]["accuracy"] >= 0.8


def test_the_recipe_trains_and_travels_in_the_checkpoint(tiny_split, tmp_path):
    r = train(model="fullres_cnn", train_path=str(tiny_split), test_path="none", epochs=5, batch_size=16,
              lr=3e-3, ema=0.9, tta="flip", label_smoothing=0.1, robust=0.3, out=str(tmp_path / "run"),
              progress=False, device="cpu", precision="fp32")  # auto times bf16 against fp32: a busy CPU may flip it
    ck = load_checkpoint(r["checkpoint"])
    assert ck["model_name"] == "fullres_cnn" and ck["tta"] == "flip"
    assert ck["config"]["ema"] == 0.9 and ck["config"]["robust"] == 0.3
    model, _ = load_classifier(r["checkpoint"])
    assert model.tta == "flip"
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert "ema_state_dict" in last  # the average resumes too
    assert not all(torch.equal(last["ema_state_dict"][k], last["state_dict"][k])
                   for k in last["state_dict"] if last["state_dict"][k].dtype.is_floating_point)
    assert r["best_val"]["accuracy"] >= 0.8
    lrs = [row["lr"] for row in r["history"]]  # the rate each epoch's last step used: one-cycle ends low, never below 0
    assert min(lrs) > 0 and lrs[-1] < lrs[0] / 10


def test_epochs_for_budget_fit_the_steps_and_validations_into_the_margin():
    # 100 s at 85%: epochs of 10 steps x 1 s + 5 s of validation -> 85 // 15 = 5 epochs
    assert epochs_for_budget(100, 10, 1.0, 5.0) == 5
    assert epochs_for_budget(100, 10, 1.0, 5.0, margin=1.0) == 6
    assert epochs_for_budget(100, 10, 0.5, 5.0) == 8  # twice the speed, not twice the epochs: validation stays
    assert epochs_for_budget(1, 10, 1.0, 5.0) == 1   # never less than one epoch


def test_replan_after_the_first_epoch_fits_what_is_left_of_the_margin():
    # 100 s at 92%: 10 s used by setup and the first epoch of 10 s -> 82 s left for 8 more epochs
    assert replan_epochs(100, 10, 10) == 9
    assert replan_epochs(100, 10, 10, margin=1.0) == 10
    assert replan_epochs(100, 95, 10) == 1   # the budget is spent: stop after the epoch already done
    assert replan_epochs(100, 50, 100) == 1


def test_a_time_budget_sets_the_epochs_and_a_resumed_run_keeps_them(tiny_split, tmp_path, monkeypatch, capsys):
    import utils.training.budget as budget
    import utils.training.loop as train_loop
    # a machine where a training step takes 0.5 s: 6 s at 85% over 6 steps of 16 images (86 training images),
    # and where the first epoch then uses the whole budget
    monkeypatch.setattr(budget, "step_seconds", lambda *a, **k: 0.5)
    monkeypatch.setattr(train_loop, "replan_epochs", lambda *a, **k: 1)
    run = dict(model="fullres_cnn", train_path=str(tiny_split), test_path="none", batch_size=16, lr=3e-3,
               budget_minutes=0.1, out=str(tmp_path / "run"), progress=False, device="cpu", calibrate=False)
    r = train(**run)
    # the probe step (0.5 s) plus the batch augmentation (flips: a few ms, tens on a busy CPU)
    assert re.search(r"time budget 0.1 min: 1 epochs \(measured 5\d\d ms a step, 6 steps an epoch",
                     capsys.readouterr().err)
    assert len(r["history"]) == 1
    assert load_checkpoint(r["checkpoint"])["config"]["epochs"] == 1
    monkeypatch.setattr(budget, "step_seconds", lambda *a, **k: 0.05)  # now 1/10 as long: 10+ epochs would fit
    r = train(**run, resume=True)
    assert len(r["history"]) == 1  # the run was planned as one epoch, and that epoch is done


def test_a_time_budget_is_replanned_from_the_first_epoch(tiny_split, tmp_path, monkeypatch, capsys):
    import utils.training.budget as budget
    # the probe says 50 ms a step: 5.1 s over epochs of 0.3 s of steps plus a validation of a few milliseconds
    monkeypatch.setattr(budget, "step_seconds", lambda *a, **k: 0.05)
    r = train(model="fullres_cnn", train_path=str(tiny_split), test_path="none", batch_size=16, lr=3e-3,
              budget_minutes=0.1, out=str(tmp_path / "run"), progress=False, device="cpu", calibrate=False)
    err = capsys.readouterr().err
    assert 10 <= int(re.search(r"time budget 0.1 min: (\d+) epochs", err).group(1)) <= 17
    # the real epochs of 86 images take a fraction of that: the measured first epoch sets the count
    planned = int(re.search(r"re-planned after epoch 1: (\d+) epochs", err).group(1))
    assert len(r["history"]) == planned == load_checkpoint(r["checkpoint"])["config"]["epochs"]
    # the one-cycle schedule was rebuilt for the new count: it ends annealed (stepping past its end would raise)
    assert r["history"][-1]["lr"] < 1e-6 < r["history"][0]["lr"]

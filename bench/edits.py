#!/usr/bin/env python
"""The edit detector, measured: `--recipe edits` (REAL / EDITED / FAKE with an edit map) and how far it
generalizes beyond the edits it was trained on.

Runs, each within a budget of CPU wall time (--minutes and the flags below; measured on the machine at hand):
  edits:      `train.py --recipe edits` (all of train, the shipped EDITED, synthetic edits of REAL photos),
              scored on test-real-edited, test-fake-edited, test-3class (image level, per kind, pixel level),
              on `test` (real vs fake) and on test-3class re-saved as JPEG 75 (the JPEG-shortcut check);
  baseline:   `train.py --recipe best` at the same budget: the best binary real-vs-fake model, for comparison;
  unedited:   the edits recipe on train-unedited (synthetic edits only; the source photos of the shipped EDITED
              left out) scored on the shipped EDITED images: edits another program made;
  families:   (--leave-one-out-epochs > 0) smaller runs on train-unedited, each --leave-one-out-epochs epochs of
              --leave-one-out-images images, scored on test-families (data/derived.py: test REAL photos, each
              edited by one family, saved as JPEG 75, + unedited test REAL photos):
              - one run per family of data.synthetic_edits.ALL_KINDS, trained on all the other families: the
                family left out is the edit it never saw (`leave_one_kind_out_recall`, its REAL called EDITED);
              - one run on every family and one on the shipped five kinds alone, for reference: what a family's
                recall is when it is trained, and what the five kinds alone generalise to; the all-families
                run also scores the shipped EDITED images (`families_shipped_edited_recall`).
              The default detector (weights/three_class.pt) is scored on test-families too.
              --leave-one-out-model trains these runs with another network (run folders named after it), and
              --leave-out a few families (the five-kinds run then is not run): to try an idea on the hardest.
The test edits of test-3class come from data/edits.py, the module the shipped five kinds share: the unedited
and leave-out runs are there to say what that is worth. --minutes 0 runs the family table alone. The last line is
one JSON object.
"""
import argparse
import json
import time

import numpy as np

from data.derived import edit_kinds, edit_masks
from data.edits import DIFF_LEVEL
from data.synthetic_edits import ALL_KINDS, KINDS, kinds_from
from shipping.detectors import detector_path
from utils.inference.checkpoint import load_classifier
from utils.inference.evaluation import evaluate, folder_edit_map_metrics, predict_folder
from utils.inference.metrics import format_metrics
from utils.training.run import RUNS_DIR, train

PATCH_KINDS = ("blur_patch", "smooth_patch", "copy_patch", "brightness_contrast")


def trained(name, minutes, **overrides):
    """Train (or, with --reuse, reuse) runs/bench-edits-<name> -> (checkpoint path, training minutes)."""
    out = RUNS_DIR / f"bench-edits-{name}"
    if ARGS.reuse and (out / "checkpoint.pt").exists():
        return str(out / "checkpoint.pt"), json.loads((out / "history.json").read_text()).get("minutes")
    start = time.perf_counter()
    result = train(budget_minutes=minutes, out=str(out), test_path="none", progress=False, seed=ARGS.seed,
                   **overrides)
    took = (time.perf_counter() - start) / 60
    history = json.loads((out / "history.json").read_text())
    (out / "history.json").write_text(json.dumps({**history, "minutes": took}, indent=2))
    return result["checkpoint"], took


def scored(checkpoint, split, **kwargs):
    metrics = evaluate(checkpoint, split, verbose=False, **kwargs)
    print(f"\n== {split}\n{format_metrics(metrics)}")
    return metrics


def shipped_edited(checkpoint):
    """Recall of the shipped EDITED images (train-3class's, one copy per name) and their pixel metrics."""
    run = predict_folder(checkpoint, "train-3class", verbose=False)
    folder, classes = run["folder"], run["classes"]
    edited = run["labels"] == classes.index("EDITED")
    called = run["predictions"][edited]
    pixels = folder_edit_map_metrics(folder, run["maps"]) if run["maps"] is not None else {}
    out = {"n": int(edited.sum()), "recall": float((called == classes.index("EDITED")).mean()),
           "called": {c: int((called == i).sum()) for i, c in enumerate(classes)},
           "pixel_f1": pixels.get("pixel_f1"), "pixel_iou": pixels.get("pixel_iou")}
    print(f"\n== shipped EDITED images ({out['n']}), edits another program made: recall {out['recall']:.4f}; "
          f"called {out['called']}; pixel F1 {out['pixel_f1']}, IoU {out['pixel_iou']}")
    return out


def _scored_families(checkpoint):
    """test-families scored: (the run, P(EDITED), called EDITED, first edit's family, is REAL, the P(EDITED) cut
    that calls 5% of the split's unedited REAL photos EDITED)."""
    run = predict_folder(checkpoint, "test-families", verbose=False)
    classes = run["classes"]
    p_edited = run["probs"][:, classes.index("EDITED")]
    called = run["predictions"] == classes.index("EDITED")
    kinds, real = np.asarray(edit_kinds(run["folder"]), dtype=object), run["labels"] == classes.index("REAL")
    return run, p_edited, called, kinds, real, np.quantile(p_edited[real], 0.95)


def family_recall(checkpoint):
    """-> ({family: EDITED recall on test-families at the model's verdict}, {family: recall at the P(EDITED) cut
    that calls 5% of the split's unedited REAL photos EDITED}, share of those REAL photos called EDITED). The 5%
    operating point is a metric, like a ROC-AUC: it compares models at one false-alarm rate and chooses nothing."""
    _, p_edited, called, kinds, real, cut = _scored_families(checkpoint)
    return ({k: float(called[kinds == k].mean()) for k in ALL_KINDS},
            {k: float((p_edited[kinds == k] > cut).mean()) for k in ALL_KINDS}, float(called[real].mean()))


SIZES = ((0, 16), (16, 64), (64, 32 * 32 + 1))  # pixels an edit changed by more than data.edits.DIFF_LEVEL levels


def score_run(checkpoint) -> dict:
    """--score: one run's recall per family on test-families (also by how many pixels the edit visibly changed:
    a faint edit is not one a detector can be asked to find) and on the shipped EDITED images."""
    run, p_edited, called, kinds, real, cut = _scored_families(checkpoint)
    changed = edit_masks(run["folder"])[0].reshape(len(kinds), -1).sum(1)
    buckets = {f"{lo}-{hi - 1}" if hi <= 1024 else f"{lo}+": (changed >= lo) & (changed < hi) for lo, hi in SIZES}
    called_fake = run["predictions"] == run["classes"].index("FAKE")
    out = {"family_recall": {}, "family_recall_at_5pct_real": {}, "at_5pct_real_by_changed_pixels": {},
           "family_called_fake": {}, "real_called_edited": float(called[real].mean())}
    print(f"\n== {checkpoint} on test-families: EDITED recall [at the cut calling 5% of REAL EDITED], called "
          f"FAKE; at that cut, by pixels changed by more than {DIFF_LEVEL} levels (images)")
    for kind in ALL_KINDS:
        mine = kinds == kind
        out["family_recall"][kind], out["family_recall_at_5pct_real"][kind], out["family_called_fake"][kind] = (
            float(called[mine].mean()), float((p_edited[mine] > cut).mean()), float(called_fake[mine].mean()))
        out["at_5pct_real_by_changed_pixels"][kind] = {
            b: (float((p_edited[mine & m] > cut).mean()) if (mine & m).any() else None, int((mine & m).sum()))
            for b, m in buckets.items()}
        print(f"{kind:>22} {out['family_recall'][kind]:6.3f} [{out['family_recall_at_5pct_real'][kind]:.3f}] "
              f"FAKE {out['family_called_fake'][kind]:.2f}   " +
              "  ".join(f"{b} px: {'-' if r is None else f'{r:.2f}'} ({n})"
                        for b, (r, n) in out["at_5pct_real_by_changed_pixels"][kind].items()))
    print(f"{'REAL called EDITED':>22} {out['real_called_edited']:6.3f}")
    shipped = shipped_edited(checkpoint)
    return {**out, "shipped_edited_recall": shipped["recall"], "shipped_edited_pixel_f1": shipped["pixel_f1"]}


def family_table():
    """The families part of the docstring -> dict for the JSON line."""
    small = dict(recipe="edits", train_path="train-unedited", epochs=ARGS.leave_one_out_epochs,
                 max_train_images=ARGS.leave_one_out_images)
    suffix = ""
    if ARGS.leave_one_out_model:
        small["model"], suffix = ARGS.leave_one_out_model, f"-{ARGS.leave_one_out_model}"
    leave_out = kinds_from(ARGS.leave_out or "all")
    shipped, shipped_at5, shipped_real = family_recall(str(detector_path()))
    all_families = trained(f"families-all{suffix}", 0, edit_kinds="all", **small)[0]
    every, every_at5, every_real = family_recall(all_families)
    every_shipped = shipped_edited(all_families)["recall"]
    five, five_at5, five_real = ({}, {}, None) if ARGS.leave_out else family_recall(
        trained(f"families-five{suffix}", 0, edit_kinds=",".join(KINDS), **small)[0])
    left_out, left_out_at5, left_out_real = {}, {}, {}
    for kind in leave_out:
        others = ",".join(k for k in ALL_KINDS if k != kind)
        recall, at5, real = family_recall(trained(f"without-{kind}{suffix}", 0, edit_kinds=others, **small)[0])
        left_out[kind], left_out_at5[kind], left_out_real[kind] = recall[kind], at5[kind], real
        print(f"left out {kind}: its recall {recall[kind]:.4f} ({at5[kind]:.4f} at 5% of REAL called EDITED), "
              f"REAL called EDITED {real:.4f}", flush=True)
    print(f"\n== test-families: EDITED recall per family at each model's verdict, and [at the cut calling 5% of "
          f"REAL EDITED]\n{'family':>22} {'left out':>15} {'all trained':>15} {'five kinds':>15} "
          f"{'default detector':>17}")
    for kind in ALL_KINDS:
        cells = ((left_out, left_out_at5), (every, every_at5), (five, five_at5), (shipped, shipped_at5))
        print(f"{kind:>22} " + " ".join(f"{r[kind]:6.3f} [{a[kind]:.3f}]" if kind in r else f"{'-':>15}"
                                        for r, a in cells))
    print(f"{'REAL called EDITED':>22} {max(left_out_real.values()):6.3f} (most) {every_real:6.3f}{'':9s}"
          f"{five_real if five_real is not None else float('nan'):6.3f}{'':9s}{shipped_real:6.3f}")
    return {"leave_one_kind_out_recall": left_out, "leave_one_kind_out_min": min(left_out.values()),
            "leave_one_kind_out_recall_at_5pct_real": left_out_at5,
            "leave_one_kind_out_min_at_5pct_real": min(left_out_at5.values()),
            "leave_one_kind_out_real_called_edited": left_out_real, "families_all_recall": every,
            "families_all_real_called_edited": every_real, "families_shipped_edited_recall": every_shipped,
            "families_all_recall_at_5pct_real": every_at5,
            "five_kinds_recall": five, "five_kinds_recall_at_5pct_real": five_at5,
            "five_kinds_real_called_edited": five_real,
            "default_detector_family_recall": shipped, "default_detector_recall_at_5pct_real": shipped_at5,
            "default_detector_real_called_edited": shipped_real,
            "leave_one_out_epochs": ARGS.leave_one_out_epochs, "leave_one_out_images": ARGS.leave_one_out_images,
            "leave_one_out_model": ARGS.leave_one_out_model or "the recipe's"}


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20, help="budget of the edits run (default %(default)s; 0: "
                   "the edits, baseline and unedited runs are not run)")
    p.add_argument("--baseline-minutes", type=float, help="budget of the binary baseline (default: --minutes; 0: "
                   "not run)")
    p.add_argument("--unedited-minutes", type=float, help="budget of the unedited run (default: --minutes)")
    p.add_argument("--leave-one-out-epochs", type=int, default=0,
                   help="epochs of each run of the family table (default 0: not run)")
    p.add_argument("--leave-one-out-images", type=int, default=20000,
                   help="training images of each run of the family table (default %(default)s)")
    p.add_argument("--leave-one-out-model", help="network of the family table's runs (default: the recipe's)")
    p.add_argument("--leave-out", help="comma-separated families to leave out in turn (default: every one)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default %(default)s)")
    p.add_argument("--reuse", action="store_true", help="reuse runs/bench-edits-* checkpoints that exist")
    p.add_argument("--score", metavar="CHECKPOINT", action="append", default=[],
                   help="instead: score this run (repeatable) on test-families and the shipped EDITED images")
    ARGS = p.parse_args()
    try:
        kinds_from(ARGS.leave_out or "all")
    except ValueError as e:
        p.error(f"--leave-out: {e}")
    if ARGS.score:
        print(json.dumps({checkpoint: score_run(checkpoint) for checkpoint in ARGS.score}))
        return
    summary = main_runs() if ARGS.minutes else {}
    if ARGS.leave_one_out_epochs:
        summary.update(family_table())
    print(json.dumps(summary))


def main_runs() -> dict:
    """The edits, baseline and unedited runs of the docstring -> dict for the JSON line."""
    checkpoint, minutes = trained("edits", ARGS.minutes, recipe="edits")
    model = load_classifier(checkpoint)
    real_edited = scored(model, "test-real-edited")
    fake_edited = scored(model, "test-fake-edited")
    three = scored(model, "test-3class", jpeg_quality=75)
    real_fake = scored(model, "test")
    baseline = None
    baseline_minutes = ARGS.minutes if ARGS.baseline_minutes is None else ARGS.baseline_minutes
    if baseline_minutes:
        baseline_checkpoint, _ = trained("baseline", baseline_minutes, recipe="best")
        baseline = scored(baseline_checkpoint, "test")["accuracy"]
    unedited_minutes = ARGS.minutes if ARGS.unedited_minutes is None else ARGS.unedited_minutes
    unedited_checkpoint, _ = trained("unedited", unedited_minutes, recipe="edits", train_path="train-unedited")
    shipped = shipped_edited(unedited_checkpoint)
    by_kind = three["edited_recall_by_kind"]
    return {
        "real_vs_edited_balanced_acc": real_edited["balanced_accuracy"],
        "real_vs_edited_roc_auc": real_edited["roc_auc"],
        "fake_vs_edited_balanced_acc": fake_edited["balanced_accuracy"],
        "three_class_balanced_acc": three["balanced_accuracy"],
        "three_class_jpeg75_accuracy_change": three["jpeg_accuracy_change"],
        "edited_recall_by_kind": {k: v["recall"] for k, v in by_kind.items()},
        "patch_edit_recall_min": min(by_kind[k]["recall"] for k in PATCH_KINDS if k in by_kind),
        "real_called_edited": three["real_called_edited"],
        "pixel_f1": three["edit_map"]["pixel_f1"], "pixel_iou": three["edit_map"]["pixel_iou"],
        "pixel_roc_auc": three["edit_map"]["pixel_roc_auc"],
        "real_false_map_rate": real_edited["edit_map"]["false_map_rate"],
        "real_vs_fake_accuracy": real_fake["accuracy"], "binary_baseline_accuracy": baseline,
        "shipped_edited_recall": shipped["recall"], "shipped_edited_pixel_f1": shipped["pixel_f1"],
        "minutes": minutes,
    }


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Classify image files and folders (recursively): by default with the shipped default detector
(weights/two_part_edits.pt, see docs/model-card.md); `--checkpoint` names a checkpoint from train.py instead, and
`--model` an ONNX model from export.py (runs on onnxruntime alone, torch is not imported; the default's export is
weights/two_part_edits.onnx).

One line per file (utils.inference.verdict.format_line): path, label, probability, then the scores, the flags
and the edit box. The default detector answers two questions apart: the probability printed is P(FAKE) from a
whole-image real-vs-fake network, and `edit_score` comes from an edit map (a region that stands out from the
rest of its image, or a change spread over all of it); the label is FAKE, unless a strong edit meets a middling
P(FAKE), else EDITED where the edit score reaches its cut (fitted so that 1% of unedited validation images pass
it), else REAL (--json: p_fake, edit_score, edit_cut, edit_box). A verdict that is not EDITED but whose edit
score reaches a lower cut, that 5% pass, is flagged "possibly edited" and uncertain (--json: possibly_edited,
possible_cut); weights/two_part.pt has no such band and asks FAKE first. A checkpoint of two classes prints
P(positive class) (FAKE, or EDITED; REAL is negative) whatever the label; of more classes, that of the
predicted label followed by every class's probability (REAL=... EDITED=... FAKE=...).
Probabilities are calibrated on the validation split (temperature scaling). A verdict is marked "uncertain" near
its decision boundary: for two classes when P(positive) lies in the half of its side of the cut nearest to it
(0.25-0.75 for the usual cut at 0.5; with a threshold t tuned on validation, t/2 to (1+t)/2); for more classes
when the chosen class is under 0.75.
A model with an edit map also gives edit_box=x,y,w,h: the box around the pixels its map calls edited, in the view
it saw (a two-part detector's only for an EDITED or possibly edited verdict); --masks DIR writes the maps
themselves, and --json has edit_box, edit_area (pixels) and mask (the PNG's path).
A verdict on an image unlike anything the detector learned (its features far from those of its training images,
utils/inference/outside.py) is marked "outside" (--json: "outside": true, with outside_score, 1 being the cut):
its label is a guess. ONNX models do not carry that score ("outside": null).
In folders, files without an image extension (.xmp, .txt, .json sidecars) are skipped and counted.
Any size or mode is accepted and prepared as in training. A file that cannot be read gets an error line and
the run goes on. Exit 0: every file classified; 1: some could not be read; 2: usage error (bad checkpoint...).
"""
import argparse
import collections
import json
import sys
from pathlib import Path

from utils import cli
from utils.inference.verdict import format_line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="a checkpoint.pt written by train.py or ship.py (default: the shipped "
                                             "default detector, weights/two_part_edits.pt)")
    source.add_argument("--model", metavar="ONNX", help="a model.onnx written by export.py (no torch needed)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--sample", type=int, metavar="N", help="PATH is a folder of <CLASS>/ folders (a split): classify "
                   "N files drawn at random from each class (--seed) and count how many got their folder's label")
    p.add_argument("--seed", type=int, default=0, help="the draw of --sample (default 0)")
    p.add_argument("--masks", metavar="DIR", help="models with an edit map: write each classified file's map as a "
                   "greyscale PNG under DIR (its path there is the file's path + .png; 0-255 = probability "
                   "that the pixel was edited)")
    p.add_argument("--batch-size", type=int, help="images a forward pass (default: 64 on a CPU, 1024 on a GPU; "
                                                  "256 with --model, where onnxruntime is indifferent to it)")
    p.add_argument("--device", default="auto", help="with --checkpoint (ONNX runs on the CPU)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    progress = args.progress and sys.stderr.isatty()
    truth = {}
    if args.sample:
        from utils.inference.files import sample_files
        if len(args.paths) != 1 or not Path(args.paths[0]).is_dir():
            p.error("--sample takes one folder of <CLASS>/ folders")
        sampled_from = args.paths[0]
        drawn = sample_files(sampled_from, args.sample, args.seed)
        args.paths, truth = [str(f) for f, _ in drawn], {str(f): c for f, c in drawn}
    if args.model:
        from utils.inference.onnx_model import OnnxClassifier
        model = OnnxClassifier(args.model)
        classes, rule, view = model.classes, model.edit_rule, (model.image_size, model.resize)
        results = model.predict(args.paths, args.batch_size, progress, args.masks)
    else:
        from utils.inference.checkpoint import default_detector, image_view, load_classifier
        from utils.inference.predict import predict
        from utils.inference.scoring import select_device
        device = select_device(args.device)
        if args.checkpoint is None:
            args.checkpoint = default_detector()
            print(f"# detector: {args.checkpoint} (shipped; --checkpoint or --model picks another)", file=sys.stderr)
        model, ck = load_classifier(args.checkpoint, device)  # read once, shared with predict()
        classes, rule, view = ck["classes"], ck.get("edit_rule"), image_view(ck)
        results = predict((model, ck), args.paths, args.batch_size, device, progress, args.masks)
    if not args.json and rule:
        band = (f", possibly edited at >= {rule['possible_cut']:.3f} ({rule['possible_false_alarm']:.0%})"
                if rule.get("possible_cut") is not None else "")
        print(f"# p_fake = P(FAKE) from the real-vs-fake part; edit_score from the edit map, EDITED at >= "
              f"{rule['cut']:.3f} (passed by {rule['false_alarm']:.0%} of unedited validation images){band}",
              file=sys.stderr)
    elif not args.json and len(classes) == 2:
        print(f"# probability = P({classes[1]}); {classes[0]} is the negative class", file=sys.stderr)
    failed = total = resized = outside = right = flagged = 0
    skipped = collections.Counter()  # by extension
    for r in results:
        total += 1
        resized += bool(r.get("resized"))
        outside += bool(r.get("outside"))
        right += r.get("label") is not None and r.get("label") == truth.get(r["path"])
        flagged += bool(r.get("possibly_edited")) and truth.get(r["path"]) == "EDITED"
        if "error" in r:
            failed += 1
        if "skipped" in r:
            skipped[Path(r["path"]).suffix.lower() or "(none)"] += 1
        if args.json:
            print(json.dumps(r), flush=True)
        elif "skipped" not in r:  # counted below
            print(format_line(r), flush=True)
    n_skipped = sum(skipped.values())
    print(f"{total} files: {total - failed - n_skipped} classified, {failed} failed, {n_skipped} skipped"
          + (f" (not images by extension: {', '.join(f'{k} {v}' for k, v in skipped.most_common())})"
             if n_skipped else ""), file=sys.stderr)
    if truth:
        print(f"# {right} of {len(truth)} right: {args.sample} drawn from each class folder of {sampled_from} "
              f"with seed {args.seed}" + (f"; {flagged} more EDITED flagged possibly edited" if flagged else ""),
              file=sys.stderr)
    if outside:
        print(f"# {outside} of them outside what the detector knows: unlike every image it learned from, so their "
              "labels are guesses (docs/model-card.md, \"Outside what I know\")", file=sys.stderr)
    if resized and view[1] == "crop":
        print(f"# {resized} of them of another size than the model's {view[0]} px view: cropped, or scored tile by "
              "tile at their own size", file=sys.stderr)
    elif resized:
        print(f"# {resized} of them shrunk to {view[0]}x{view[0]} from another size: on larger real photos than the "
              "training images the verdicts are unreliable (docs/model-card.md, Limitations)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)

"""The page's server: a Flask app (`create_app`) with one page. GET shows the form; POST takes one or many images
and the chosen detector and answers with a verdict card per file, in the order given.

Uploads are written only to a temporary folder made for the request and removed with it, under names the
server makes (the user's file name is only shown). Each file then goes through `utils.inference.predict.predict`, the
path predict.py takes, with its decoding limits (data/images.py: decompression bombs, files over 50 MB); a
file it cannot read gets its error on the page and the others still get verdicts.
"""
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from flask import Flask, render_template, request

from data.images import MAX_FILE_BYTES
from utils.inference.checkpoint import DEFAULT_DETECTOR, WEIGHTS_DIR, image_view, load_classifier, weights_path
from utils.inference.predict import predict
from utils.inference.scoring import select_device
from utils.inference.verdict import UNCERTAIN_BELOW, explained_class, score_rows
from utils.reporting.gradcam import gradcam
from web.render import heat_overlay, map_overlay, png_uri

MAX_UPLOAD_BYTES = 256_000_000  # one request; each file is also held to data/images.py's MAX_FILE_BYTES
EDIT_MAP_FROM = 0.3  # the edit map is drawn when P(EDITED) (two-part: the edit score over its cut) reaches this
# or EDITED is the verdict


class Detectors:
    """The models the page offers: the shipped ones (weights/*.pt) and every runs/*/checkpoint.pt, each loaded
    on first use and kept. Only a listed file can be chosen: the form names a choice, never a path to load."""

    def __init__(self, runs_dir="runs", weights_dir=WEIGHTS_DIR, device="cpu"):
        self.runs_dir, self.weights_dir, self.device = Path(runs_dir), Path(weights_dir), device
        self.loaded = {}
        self.lock = threading.Lock()  # one request at a time runs a model (Grad-CAM hooks the model it explains)

    def choices(self) -> list:
        """-> [(key, label)], the default detector first."""
        shipped = sorted(self.weights_dir.glob("*.pt"), key=lambda p: (p.stem != DEFAULT_DETECTOR, p.stem))
        runs = sorted(self.runs_dir.glob("*/checkpoint.pt"))
        return ([(f"shipped:{p.stem}", f"shipped: {p.stem}") for p in shipped]
                + [(f"run:{p.parent.name}", f"run: {p.parent.name}") for p in runs])

    def path(self, key) -> Path:
        if key not in dict(self.choices()):
            raise KeyError(key)
        kind, name = key.split(":", 1)
        return weights_path(name, self.weights_dir) if kind == "shipped" else self.runs_dir / name / "checkpoint.pt"

    def get(self, key):
        """-> (model, checkpoint dict) for a listed key; a KeyError for anything else."""
        path = self.path(key)
        if key not in self.loaded:
            self.loaded[key] = load_classifier(path, self.device)
        return self.loaded[key]


def verdict_cards(classifier, uploads, device="cpu") -> list:
    """One dict per (shown name, saved path) in `uploads`: the verdict, the three probabilities, `uncertain`,
    the pictures (the view, Grad-CAM, and the edit map when EDITED is likely), or the file's `error`."""
    model, ck = classifier
    results = list(predict(classifier, [path for _, path in uploads], device=device, keep_arrays=True))
    # Grad-CAM explains a model's view; a tiled image (a model at its images' own size) shows its stitched map
    read = [r for r in results if "label" in r and "tiles" not in r]
    explained = [ck["classes"].index(explained_class(r)) for r in read]  # the class each card names
    heat = iter(gradcam(model, np.stack([r["view"] for r in read]).transpose(0, 3, 1, 2), explained)[0]
                if read else [])
    cards = []
    for (name, _), r in zip(uploads, results):
        if "label" not in r:
            cards.append({"name": name, "error": r.get("error") or r.get("skipped")})
            continue
        # a two-part detector's edit score as a share of its cut, else P(EDITED)
        edit_evidence = r["edit_score"] / r["edit_cut"] if "edit_score" in r else r["probabilities"].get("EDITED", 0.0)
        show_map = r["edit_map"] is not None and (r["label"] == "EDITED" or r.get("possibly_edited")
                                                  or edit_evidence >= EDIT_MAP_FROM)
        cards.append({"name": name, "label": r["label"], "uncertain": r["uncertain"], "resized": r["resized"],
                      "possibly_edited": r.get("possibly_edited"),
                      "outside": r.get("outside"), "rows": score_rows(r), "explains": explained_class(r),
                      "probabilities": r["probabilities"], "edit_box": r.get("edit_box"),
                      "tiles": r.get("tiles"), "image_size": r.get("image_size"), "side": image_view(ck)[0],
                      "view": png_uri(r["view"]),
                      "gradcam": None if "tiles" in r else png_uri(heat_overlay(r["view"], next(heat))),
                      "edit_map": png_uri(map_overlay(r["view"], r["edit_map"])) if show_map else None})
    return cards


def save_uploads(files, folder: Path) -> list:
    """Write the request's files into `folder` under names made here (000.jpg, 001.png, ...; the suffix kept
    when it is short and plain, since decoding does not depend on it) -> [(the user's file name, path)]."""
    uploads = []
    for i, f in enumerate(files):
        suffix = Path(f.filename or "").suffix.lower()
        suffix = suffix if len(suffix) <= 6 and suffix[1:].isalnum() else ""
        path = folder / f"{i:03d}{suffix}"
        f.save(path)
        uploads.append((Path(f.filename or f"file {i + 1}").name, path))
    return uploads


def create_app(runs_dir="runs", weights_dir=WEIGHTS_DIR, device="cpu") -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
    device = select_device(device)
    detectors = Detectors(runs_dir, weights_dir, device)
    app.extensions["detectors"] = detectors

    def page(status=200, **values):
        choices = detectors.choices()
        values.setdefault("chosen", choices[0][0] if choices else None)
        return render_template("index.html", choices=choices, uncertain_below=UNCERTAIN_BELOW, **values), status

    @app.get("/")
    def index():
        return page()

    @app.post("/")
    def classify():
        key = request.form.get("detector", "")
        files = [f for f in request.files.getlist("images") if f.filename]
        if not files:
            return page(400, message="Choose one or more image files first.", chosen=key or None)
        try:
            detectors.path(key)
        except KeyError:
            return page(400, message=f"Unknown detector {key!r}: choose one from the list.")
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="aic-upload-") as folder, detectors.lock:
            classifier = detectors.get(key)
            cards = verdict_cards(classifier, save_uploads(files, Path(folder)), device)
        seconds = time.perf_counter() - start
        # the detector by the name the list shows, never a path on this machine
        return page(cards=cards, chosen=key, detector=dict(detectors.choices())[key], classes=classifier[1]["classes"],
                    seconds=seconds, read=sum("label" in c for c in cards))

    @app.errorhandler(413)
    def too_large(_):
        return page(413, message=f"Refused: the upload is over {MAX_UPLOAD_BYTES / 1e6:.0f} MB at once "
                                 f"(and each image may be at most {MAX_FILE_BYTES / 1e6:.0f} MB). Send fewer or "
                                 "smaller files.")

    return app

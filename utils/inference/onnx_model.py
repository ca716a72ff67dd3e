"""The ONNX model: written from a checkpoint (`export_onnx`, needs torch) and run with onnxruntime alone
(`OnnxClassifier`, no torch), for deployment without the training stack.

The graph holds the model: input float32 (N, 3, S, S) RGB in 0..1 (uint8 / 255), dynamic batch; normalisation,
the calibration temperature and softmax/sigmoid are inside it. Outputs: `probabilities` (N, classes), and for a
model with an edit map `edit_map` (N, S, S), the probability that each pixel was edited. The decision is not in
the graph: the metadata carries what it needs (class names, the decision threshold, a two-part detector's
edit rule, the input convention), and `OnnxClassifier` makes verdicts with utils.inference.verdict, as the
PyTorch path does (a `label` output, where a file has one, is not read).
"""
import copy
import json
import warnings
from pathlib import Path

import numpy as np

from utils.cli import UserError
from utils.inference.classify import classify_files

INPUT_CONVENTIONS = {  # by the checkpoint's resize mode (data/images.py)
    "shrink": ("float32 NCHW RGB {s}x{s} in 0..1 (uint8 pixels / 255); resize larger images with antialiasing "
               "after a center crop to square, as data/images.py does"),
    "crop": ("float32 NCHW RGB {s}x{s} in 0..1 (uint8 pixels / 255): tiles of the image at its own resolution, "
             "never resized; pool them as utils/inference/files.py does (mean probabilities, largest edit score)"),
}


class OnnxModelError(UserError):
    """The file is missing, not an ONNX model, or not one written by export.py."""


def export_onnx(checkpoint, out, opset=18) -> dict:
    """Write `checkpoint` (a path, or a loaded (model, checkpoint dict) pair) as ONNX to `out`; returns the
    metadata stored in the file."""
    import torch

    from models import probabilities
    from utils.inference.checkpoint import image_view, load_classifier

    model, ck = load_classifier(checkpoint)
    model = copy.deepcopy(model).cpu().eval()  # the exporter's trace must not touch the caller's model
    threshold = ck.get("threshold")

    with_map = model.has_edit_map

    class Deployed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = model

        def forward(self, images):
            if not with_map:
                return probabilities(self.classifier(images))
            logits, edit_map = self.classifier(images, with_map=True)
            return probabilities(logits), torch.sigmoid(edit_map.float()).squeeze(1)

    size, resize = image_view(ck)
    metadata = {"classes": json.dumps(ck["classes"]), "positive_class": str(ck.get("positive_class")),
                "input": INPUT_CONVENTIONS[resize].format(s=size), "image_size": str(size), "resize": resize,
                "model_name": ck["model_name"],
                "temperature": str(ck["temperature"]), "threshold": str(threshold),
                "tta": model.tta,  # views averaged inside the graph (flip-shift: 6 passes an image)
                "producer": "ai-image-classifier export.py"}
    if ck.get("edit_rule"):  # a two-part detector: the map's pooling and cut travel with the graph
        metadata["edit_rule"] = json.dumps(ck["edit_rule"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(2, 3, ck["image_size"], ck["image_size"])
    with warnings.catch_warnings():  # the tracer warns about shape checks that are constant for one model
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the TorchScript exporter: the dynamo one needs onnxscript and gives the same graph for this model
        outputs = ["probabilities"] + (["edit_map"] if with_map else [])
        torch.onnx.export(Deployed().eval(), (example,), str(out), input_names=["images"], output_names=outputs,
                          opset_version=opset, dynamo=False,
                          dynamic_axes={name: {0: "batch"} for name in ["images"] + outputs})
    import onnx
    graph = onnx.load(str(out))
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(out))
    return metadata


class OnnxClassifier:
    """An exported model under onnxruntime, as utils.inference.classify's scorer: `score(uint8 or 0..1 images)
    -> (probabilities, edit maps or None)`; ONNX models carry no outside score."""

    outside_cut = None

    def __init__(self, path, threads=0):
        import onnxruntime as ort
        path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"{path}: ONNX model not found" if not path.exists() else f"{path}: not a file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a foreign file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise OnnxModelError(f"{path}: not an ONNX model ({first[:200]})") from None
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        if "classes" not in self.metadata:
            raise OnnxModelError(f"{path}: an ONNX model, but not one written by export.py (no class names in "
                                 "its metadata)")
        self.classes = json.loads(self.metadata["classes"])
        threshold = self.metadata.get("threshold")
        self.threshold = None if threshold in (None, "None") else float(threshold)
        # a two-part detector's edit rule (shipping.two_part), or None
        self.edit_rule = json.loads(self.metadata["edit_rule"]) if "edit_rule" in self.metadata else None
        self.image_size = int(self.metadata.get("image_size", 32))
        self.resize = self.metadata.get("resize", "shrink")
        self.outputs = [o.name for o in self.session.get_outputs() if o.name in ("probabilities", "edit_map")]
        self.path = path

    def score(self, images):
        images = np.asarray(images)
        x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
        probs, *maps = self.session.run(self.outputs, {"images": x})
        return probs, maps[0] if maps else None

    def outside(self, images):
        return None

    @property
    def has_edit_map(self) -> bool:
        return "edit_map" in self.outputs

    def predict(self, paths, batch_size=None, progress=False, masks_dir=None):
        """As `utils.inference.predict.predict`, with this model (`batch_size`: files read and scored at once)."""
        if masks_dir is not None and not self.has_edit_map:
            raise OnnxModelError(f"{self.path}: this model has no edit map to write")
        yield from classify_files(self, paths, batch_size, progress, masks_dir)


def max_difference(classifier, onnx_model, n=256, seed=0) -> float:
    """Largest absolute difference between the PyTorch and ONNX probabilities (and edit maps) on `n` random
    uint8 images."""
    import torch

    from models import probabilities
    model, ck = classifier
    images = np.random.default_rng(seed).integers(0, 256, (n, 3, ck["image_size"], ck["image_size"]), np.uint8)
    model = copy.deepcopy(model).cpu().eval()
    probs, maps = onnx_model.score(images)
    with torch.no_grad():
        if not model.has_edit_map:
            return float(np.abs(probs - probabilities(model(torch.from_numpy(images))).numpy()).max())
        logits, edit_map = model(torch.from_numpy(images), with_map=True)
    return float(max(np.abs(probs - probabilities(logits).numpy()).max(),
                     np.abs(maps - torch.sigmoid(edit_map.float()).squeeze(1).numpy()).max()))

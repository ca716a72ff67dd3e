"""How a batch of images is scored on a CPU: PyTorch's eager forward, or the same model exported in memory to
ONNX and run by ONNX Runtime.

ONNX Runtime fuses each convolution with its ReLU and picks blocked kernels for the CPU it finds; in fp32 it
scores `model_2` 1.8x (native-bf16 CPU) to 2.6x (AVX2 only) as fast as the eager forward, `fullres_cnn` 1.3-1.5x
and the shipped detectors 1.0-1.7x (bench/scoring.py prints the figures of the CPU at hand). The export costs
0.1-0.3 s (and the first in a process ~1 s more: the exporter imports `onnx`), so it is used only for sets of
at least `ONNX_MIN_IMAGES` (a test report, validation, calibration), never for a handful of files. The verdicts are the same: both run in fp32, and differ in the last bits only.
"""
import io
import warnings

import numpy as np
import torch

ENGINES = ("auto", "eager", "onnxruntime")
ONNX_MIN_IMAGES = 2048   # fewer images score faster eagerly than the export takes
ONNX_BATCH = 256         # model_2 under ONNX Runtime: 3,490 images/s at 256, 2,820 at 512-1024 (AVX2, 2 cores)


def forward_for_scoring(model, images, with_map=False):
    """The model's eval-mode forward on uint8 images as scoring uses it (TTA included): logits, or (logits, edit
    map probabilities (N, 1, H, W)), the sigmoid inside the forward (ONNX Runtime then fuses it)."""
    if not with_map:
        return model(images)
    logits, edit_map = model(images, with_map=True)
    return logits, torch.sigmoid(edit_map.float())


class _Exported(torch.nn.Module):
    def __init__(self, model, with_map):
        super().__init__()
        self.model, self.with_map = model, with_map

    def forward(self, images):
        return forward_for_scoring(self.model, images, self.with_map)


def onnx_runner(model, with_map=False, example=None):
    """-> a function (uint8 images tensor -> `forward_for_scoring`'s outputs) that runs `model` (an
    ImageClassifier in eval mode, on the CPU) under ONNX Runtime; None when onnxruntime is missing or the model
    does not export."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    # the traced graph keeps the example's dtype (uint8 images are divided by 255 inside): a cached split on disk
    # hands over numpy rows, which must be the tensor they stand for, not an array the tracer reads otherwise
    example = torch.zeros(2, 3, 32, 32, dtype=torch.uint8) if example is None else torch.as_tensor(example[:2])
    outputs = ["logits", "edit_map"] if with_map else ["logits"]
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks that are constant for one model
            torch.onnx.export(_Exported(model.eval(), with_map), (example,), buffer, input_names=["images"],
                              output_names=outputs, dynamo=False,
                              dynamic_axes={name: {0: "batch"} for name in ["images"] + outputs})
    except Exception:  # a layer the exporter cannot write: the eager forward scores it
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run(images):
        out = [torch.from_numpy(o) for o in session.run(outputs, {"images": np.ascontiguousarray(images.numpy())})]
        return tuple(out) if with_map else out[0]
    return run


def scoring_engine(model, device, n_images, engine="auto") -> str:
    """Which engine scores `n_images` with `model` on `device`: ONNX Runtime for a large set on a CPU (fp32
    weights), else eager."""
    if engine not in ENGINES:
        raise ValueError(f"unknown scoring engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    on_cpu = torch.device(device).type == "cpu"
    fp32 = all(p.dtype == torch.float32 for p in model.parameters())
    return "onnxruntime" if on_cpu and fp32 and n_images >= ONNX_MIN_IMAGES else "eager"

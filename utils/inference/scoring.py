"""How a model scores uint8 images: `run_model` (logits, and edit maps, batch by batch on the chosen device), and
on a CPU, which engine: PyTorch's eager forward, or the same model exported in memory to ONNX and run by ONNX
Runtime.

ONNX Runtime fuses each convolution with its ReLU and picks blocked kernels for the CPU it finds; in fp32 it
scores `model_2` 1.8x (native-bf16 CPU) to 2.6x (AVX2 only) as fast as the eager forward, `fullres_cnn` 1.3-1.5x
and the shipped detectors 1.0-1.7x (bench/scoring.py prints the figures of the CPU at hand). The export costs
0.1-0.3 s (and the first in a process ~1.5 s more: the exporter imports `onnx`), so it is used only for sets of
at least `ONNX_MIN_IMAGES` (a test report, validation, calibration, the tiles of a large photo), never for a
handful of files. An exported graph is kept in the cache folder (`onnx/`, the newest `ONNX_CACHE_FILES`), keyed by
everything it is made of, so a model scored again, in this process or the next, skips the export. The verdicts
are the same: both run in fp32, and differ in the last bits only.
"""
import hashlib
import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from data import DataError
from data.cache import atomic_write, default_cache_dir
from data.rows import DiskRows
from utils import distributed

ENGINES = ("auto", "eager", "onnxruntime")
ONNX_MIN_IMAGES = 2048   # fewer images score faster eagerly than the export takes
ONNX_BATCH = 256         # model_2 under ONNX Runtime: 3,490 images/s at 256, 2,820 at 512-1024 (AVX2, 2 cores)
ONNX_CACHE_FILES = 8     # exported graphs kept on disk: a run's validation exports a new one every epoch


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


def graph_key(model, with_map, example) -> str:
    """What an exported graph is made of: the source of every module the network's layers come from (and of
    this one), its structure, every weight and buffer (the calibration temperature is not persistent, so not in
    the state dict), its TTA, the map output, the input's dtype and shape (the graph fixes all but the batch),
    and the exporter's version."""
    h = hashlib.blake2b(digest_size=16)
    sources = {sys.modules[type(m).__module__] for m in model.modules()} | {sys.modules[__name__]}
    for module in sorted((m for m in sources if getattr(m, "__file__", None) and not m.__name__.startswith("torch")),
                         key=lambda m: m.__name__):
        h.update(Path(module.__file__).read_bytes())
    settings = (str(model), getattr(model, "tta", None), with_map, str(example.dtype), tuple(example.shape[1:]))
    h.update(repr(settings + (torch.__version__,)).encode())
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _export(model, with_map, example, outputs):
    """The ONNX graph's bytes, or None when the model does not export."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks that are constant for one model
            # the wrapper in eval mode too: the exporter puts every module back in the wrapper's mode afterwards,
            # and a fresh module's is training (BatchNorm would then update its statistics on the next batch)
            torch.onnx.export(_Exported(model.eval(), with_map).eval(), (example,), buffer, input_names=["images"],
                              output_names=outputs, dynamo=False,
                              dynamic_axes={name: {0: "batch"} for name in ["images"] + outputs})
    except Exception:  # a layer the exporter cannot write: the eager forward scores it
        return None
    return buffer.getvalue()


def _keep(folder: Path, key: str, graph: bytes):
    """Write the graph atomically and drop all but the newest ONNX_CACHE_FILES; a cache that cannot be written
    only costs the next export."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{key}.onnx", lambda f: f.write(graph))
        kept = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[ONNX_CACHE_FILES:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def onnx_runner(model, with_map=False, example=None):
    """-> a function (uint8 images tensor -> `forward_for_scoring`'s outputs) that runs `model` (an
    ImageClassifier in eval mode, on the CPU) under ONNX Runtime; None when onnxruntime is missing or the model
    does not export. The graph comes from the cache folder when this model was exported before."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    # the traced graph keeps the example's dtype (uint8 images are divided by 255 inside): a cached split on disk
    # hands over numpy rows, which must be the tensor they stand for, not an array the tracer reads otherwise
    example = torch.zeros(2, 3, 32, 32, dtype=torch.uint8) if example is None else torch.as_tensor(example[:2])
    outputs = ["logits", "edit_map"] if with_map else ["logits"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    key = graph_key(model, with_map, example)
    kept = default_cache_dir() / "onnx" / f"{key}.onnx"
    session = None
    if kept.is_file():
        try:
            session = ort.InferenceSession(str(kept), options, providers=["CPUExecutionProvider"])
            os.utime(kept)  # the newest are kept
        except Exception:  # a damaged file: export again
            session = None
    if session is None:
        graph = _export(model, with_map, example, outputs)
        if graph is None:
            return None
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        _keep(kept.parent, key, graph)

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


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; anything else must name a device this machine has
    (a DataError otherwise: one line for the user, not a traceback)."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise DataError(f"--device {name}: not a device name ({str(e).splitlines()[0]}); use auto, cpu, cuda, "
                        "cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DataError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DataError(f"--device {name}: Apple's MPS is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DataError(f"--device {name}: not supported here; use auto, cpu, cuda, cuda:N or mps")
    return device


def eval_batch_size(device) -> int:
    """Images a forward pass when scoring. On a CPU small batches are faster: model_2's first activation map
    (64 x 30 x 30 floats an image) stays in cache at 64 images and spills at 256, where it scores ~1.5x slower
    (bench/pipeline.py measures it). A GPU wants large batches."""
    return 64 if torch.device(device).type == "cpu" else 1024


@torch.no_grad()
def run_model(model, images, batch_size=None, device="cpu", with_map=False, engine="auto"):
    """Logits (N, outputs) on the CPU for uint8 images (N, 3, H, W), in eval mode, batch by batch
    (`batch_size` None: the engine's); with `with_map` (a model with an edit map) -> (logits, edit-map
    probabilities (N, H, W)). `engine`: utils.inference.scoring's (auto: ONNX Runtime for a large set on a CPU).
    Under torchrun every rank scores its own slice and all get the whole result (every rank must call it)."""
    model.eval()
    device = torch.device(device)
    images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    images = images.subset(distributed.shard(len(images))) if isinstance(images, DiskRows) \
        else images[distributed.shard(len(images))]
    forward = lambda x: forward_for_scoring(model, x, with_map)  # noqa: E731
    per_32px = max(1, images.shape[2] * images.shape[3] // 1024) if len(images) else 1  # a larger image: 32 px ones
    if scoring_engine(model, device, len(images) * per_32px, engine) == "onnxruntime":
        exported = onnx_runner(model, with_map, images)  # None: it does not export, so eager it is
        forward, batch_size = (exported, batch_size or max(1, ONNX_BATCH // per_32px)) if exported \
            else (forward, batch_size)
    batch_size = batch_size or max(1, eval_batch_size(device) // per_32px)  # the same pixels a batch at any size
    out, maps = [torch.empty(0, 1)], [torch.empty(0, *images.shape[2:])]  # for no images; dropped beside real ones
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start:start + batch_size]).to(device, non_blocking=True)  # a cache: read now
        if with_map:
            logits, edit_map = forward(x)
            maps.append(edit_map.float().squeeze(1).cpu())
        else:
            logits = forward(x)
        out.append(logits.float().cpu())
    logits = distributed.gather_cat(torch.cat(out[1:] or out))
    return (logits, distributed.gather_cat(torch.cat(maps[1:] or maps))) if with_map else logits


def run_with_map(model, images, batch_size=None, device="cpu"):
    """-> (logits, edit-map probabilities (N, H, W), or None for a model without a map): `run_model` for any
    model."""
    if model.has_edit_map:
        return run_model(model, images, batch_size, device, with_map=True)
    return run_model(model, images, batch_size, device), None

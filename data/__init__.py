"""Data: where splits live (`sources`), decoding images (`images`), the uint8 array cache (`cache`) and
batches drawn from it (`batches`)."""
from .cache import CachedFolder, load_folder
from .images import ImageError, load_image
from .sources import default_data_root, DataError, default_test_path, prepare, resolve_split

__all__ = [
    "Batches", "split_train_val", "CachedFolder", "load_folder", "ImageError", "load_image",
    "default_data_root", "DataError", "default_test_path", "prepare", "resolve_split",
]


def __getattr__(name):
    # batches needs torch; loaded on first use so that reading images (predict.py with an ONNX model) does not
    if name in ("Batches", "split_train_val"):
        from . import batches
        return getattr(batches, name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")

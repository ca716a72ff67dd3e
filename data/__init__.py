"""Data: where splits live (`sources`), decoding images (`images`), the uint8 array cache (`cache`),
batches drawn from it (`batches`), and making splits (`preparation`: unpacking, `derived` edited splits,
`perturbed` test copies, all written through `folders`)."""
from .cache import CachedFolder, load_folder
from .images import ImageError, load_image
from .sources import DataError, default_data_root, default_test_path, list_splits, resolve_split

__all__ = [
    "Batches", "split_train_val", "CachedFolder", "load_folder", "ImageError", "load_image",
    "default_data_root", "DataError", "default_test_path", "list_splits", "prepare", "resolve_split",
]


def __getattr__(name):
    # batches needs torch; loaded on first use so that reading images (predict.py with an ONNX model) does not
    if name in ("Batches", "split_train_val"):
        from . import batches
        return getattr(batches, name)
    if name == "prepare":  # writes perturbed copies with torch: loaded on first use too
        from .preparation import prepare
        return prepare
    raise AttributeError(f"module 'data' has no attribute {name!r}")

"""Where the data lives: the data root, split names, class order. Looking a split up never writes anything:
prepare.py (data.preparation) unpacks and builds every split, and a split that is not there is an error that
lists the splits there and the command that makes it.

`images/<split>/<CLASS>/<files>` is the seed's layout (its `base_path`). A split is named (`train-small`)
or given as any directory. Class folder names are compared case-insensitively; REAL is the negative class.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "datasets" / "cifake-seed.tar.gz"
NEGATIVE_CLASS = "REAL"

WHERE_TO_GET_DATA = (
    "Get CIFAKE (Kaggle: 'CIFAKE: Real and AI-Generated Synthetic Images', birdy654/cifake-real-and-ai-"
    "generated-synthetic-images, a zip with train/REAL, train/FAKE, test/REAL, test/FAKE), then run\n"
    "  python prepare.py /path/to/cifake.zip      (or a folder laid out as <split>/<CLASS>/<images>)")

# the seed's pairing of training and test splits; a folder of the user's has none
TEST_PAIRING = {"train": "test", "train-medium": "test", "train-small": "test",
                "train-real-edited": "test-real-edited", "train-fake-edited": "test-fake-edited",
                "train-3class": "test-3class"}


class DataError(Exception):
    """A data problem a user can fix; the message names the path and what is wrong."""


def default_data_root() -> Path:
    """`images/` in the repo (the seed's base_path), or $AIC_DATA_ROOT, read at call time."""
    return Path(os.environ.get("AIC_DATA_ROOT") or REPO_ROOT / "images")


def order_classes(names) -> list:
    """Upper-cased class names, REAL first (the negative class), then alphabetical."""
    upper = sorted({n.upper() for n in names})
    return sorted(upper, key=lambda c: (c != NEGATIVE_CLASS, c))


def default_test_path(train_path):
    """The test split paired with a shipped training split (train* -> test, train-real-edited ->
    test-real-edited, ...), or None for any other folder: a user's folder is not silently scored on CIFAKE."""
    return TEST_PAIRING.get(Path(str(train_path).rstrip("/")).name) if train_path else None


def list_splits(data_root=None) -> list:
    root = Path(data_root or default_data_root())
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def missing_split_message(name, data_root=None) -> str:
    root = Path(data_root or default_data_root())
    have = list_splits(root)
    return (f"{name}: no such directory or split under {root}/ "
            + (f"(splits there: {', '.join(have)}). " if have else "(no splits there yet). ")
            + "`python prepare.py` unpacks the shipped data and makes the edited, three-class and perturbed test "
              "splits; `python prepare.py --perturb SPLIT` makes the perturbed copies of another split")


def resolve_split(path_or_name, data_root=None) -> Path:
    """An existing directory as it is, or a split name under the data root; anything else is a DataError."""
    p = Path(str(path_or_name))
    if p.is_dir():
        return p.resolve()
    root = Path(data_root or default_data_root())
    if len(p.parts) == 1 and (root / p.name).is_dir():
        return (root / p.name).resolve()
    raise DataError(missing_split_message(path_or_name, root))

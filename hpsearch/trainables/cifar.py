"""CIFAR-10 from a local folder: the python batches (`cifar-10-batches-py`) or the binary ones (`-bin`).

The python batches are pickles written by Python 2 and numpy 1.x. Unpickling can run any
callable a file names, so this reader allows exactly what those files hold: dicts, lists,
byte strings, ints, and numpy arrays, which are rebuilt by functions of ours (an empty array
of a checked dtype, filled by `ndarray.__setstate__` from bytes). Any other global refuses
the file. Split as in the classic two-layer-net exercise: the last 1,000 training images
(fewer for small files) validate; test_batch stays untouched for a final check.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hpsearch.errors import HpsearchError
from hpsearch.trainables.dataset import Dataset

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
IMAGE_BYTES = 32 * 32 * 3
ALLOWED_DTYPES = {"u1", "i1", "i4", "i8", "u4", "u8", "f4", "f8"}


def _reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """What numpy's `multiarray._reconstruct` does for a plain ndarray, and nothing else."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to build {cls!r}")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _dtype(code: Any, align: Any = False, copy: Any = True) -> np.dtype:
    code = code.decode() if isinstance(code, bytes) else code
    if code not in ALLOWED_DTYPES:
        raise pickle.UnpicklingError(f"refusing dtype {code!r}")
    return np.dtype(code, align=False, copy=True)  # a copy: BUILD sets its state next


# (module, name) a CIFAR batch names -> our stand-in; numpy 2 writes numpy._core.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a CIFAR-10 batch holds only "
                "dicts, lists, bytes, ints and numpy arrays"
            ) from None


def read_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 3072] uint8, labels [N] int64) of one python-format batch, safely."""
    try:
        with open(path, "rb") as f:
            d = _Unpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise HpsearchError(f"{path} is not a CIFAR-10 python batch: {e}") from None
    if not isinstance(d, dict):
        raise HpsearchError(f"{path} is not a CIFAR-10 python batch (no dict inside)")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        raise HpsearchError(f"{path} is not a CIFAR-10 python batch (needs 'data' array and 'labels' list)")
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES or data.shape[0] != len(labels):
        raise HpsearchError(f"{path}: data has shape {data.shape}, expected [{len(labels)}, {IMAGE_BYTES}]")
    return data.astype(np.uint8, copy=False), np.asarray(labels, dtype=np.int64)


def read_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Binary format: records of 1 label byte + 3072 pixel bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % (IMAGE_BYTES + 1):
        raise HpsearchError(f"{path} is not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
    rec = raw.reshape(-1, IMAGE_BYTES + 1)
    return rec[:, 1:], rec[:, 0].astype(np.int64)


def find_batches(root: Path) -> tuple[list[Path], str]:
    """The training batch files under root (or its cifar-10-batches-* subfolder) and their format."""
    for folder in (root, root / "cifar-10-batches-py", root / "cifar-10-batches-bin"):
        py = [folder / n for n in TRAIN_BATCHES if (folder / n).is_file()]
        if py:
            return py, "py"
        binary = [folder / f"{n}.bin" for n in TRAIN_BATCHES if (folder / f"{n}.bin").is_file()]
        if binary:
            return binary, "bin"
    raise HpsearchError(
        f"no CIFAR-10 batches in {root} (expected data_batch_1 ... data_batch_5 of "
        "cifar-10-batches-py, or data_batch_1.bin ... of cifar-10-batches-bin)"
    )


def load_cifar10(path: str) -> Dataset:
    """Training batches as a Dataset: pixels / 255, centred on the training mean, [N, 3072] float32."""
    root = Path(path).expanduser()
    files, fmt = find_batches(root)
    read = read_py_batch if fmt == "py" else read_bin_batch
    parts = [read(f) for f in files]
    X = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    y = np.concatenate([p[1] for p in parts])
    n_val = min(1000, max(1, len(X) // 50))
    X_train, y_train, X_val, y_val = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
    mean = X_train.mean(axis=0, keepdims=True)
    return Dataset(f"cifar10:{root}", X_train - mean, y_train, X_val - mean, y_val)

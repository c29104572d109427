"""Built-in data sets, as float32 arrays: digits (bundled), spiral (generated), npz:PATH, cifar10:DIR."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from hpsearch.errors import HpsearchError
from hpsearch.trainables.cifar import load_cifar10
from hpsearch.trainables.dataset import Dataset

__all__ = ["Dataset", "digits", "spiral", "npz", "load", "load_cifar10"]

SPLIT_SEED = 0  # the train/validation split never depends on the sweep seed


def _split(name: str, X: np.ndarray, y: np.ndarray, val_fraction: float) -> Dataset:
    idx = np.random.default_rng(SPLIT_SEED).permutation(len(X))
    n_val = max(1, int(round(val_fraction * len(X))))
    val, train = idx[:n_val], idx[n_val:]
    mean = X[train].mean(axis=0, keepdims=True)  # centre with training statistics only
    X = (X - mean).astype(np.float32)
    return Dataset(name, X[train], y[train].astype(np.int64), X[val], y[val].astype(np.int64))


def digits(val_fraction: float = 0.25) -> Dataset:
    """The UCI handwritten digits (1,797 8x8 images, 10 classes), bundled with hpsearch."""
    with resources.files("hpsearch.trainables.bundled").joinpath("digits.npz").open("rb") as f:
        d = np.load(f)
        X, y = d["X"].astype(np.float32) / 16.0, d["y"]
    return _split("digits", X, y, val_fraction)


def spiral(val_fraction: float = 0.25, points_per_class: int = 300, classes: int = 3) -> Dataset:
    """The classic 2-D spiral: not linearly separable, so a hidden layer is needed."""
    rng = np.random.default_rng(SPLIT_SEED)
    X = np.zeros((points_per_class * classes, 2), dtype=np.float32)
    y = np.zeros(points_per_class * classes, dtype=np.int64)
    for j in range(classes):
        ix = range(points_per_class * j, points_per_class * (j + 1))
        r = np.linspace(0.0, 1, points_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, points_per_class) + rng.normal(size=points_per_class) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return _split("spiral", X, y, val_fraction)


def npz(path: str) -> Dataset:
    """A user's .npz with X_train, y_train, X_val, y_val (features flattened to [N, D])."""
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise HpsearchError(f"cannot read data set {path}: {e}") from None
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in d]
    if missing:
        raise HpsearchError(f"data set {path} lacks arrays {', '.join(missing)} (needs X_train, y_train, X_val, y_val)")
    Xt = d["X_train"].reshape(len(d["X_train"]), -1).astype(np.float32)
    Xv = d["X_val"].reshape(len(d["X_val"]), -1).astype(np.float32)
    return Dataset(Path(path).name, Xt, d["y_train"].astype(np.int64), Xv, d["y_val"].astype(np.int64))


@functools.lru_cache(maxsize=4)
def load(spec: str, source_dir: str = ".", val_fraction: float = 0.25) -> Dataset:
    """Resolve a `dataset:` setting; relative paths are read from the sweep file's folder."""
    kind, _, arg = spec.partition(":")
    if kind in ("npz", "cifar10"):
        p = Path(arg).expanduser()
        if not p.is_absolute() and not p.exists():
            p = Path(source_dir) / arg
        if kind == "npz":
            return npz(str(p))
        return load_cifar10(str(p))
    if spec == "digits":
        return digits(val_fraction)
    if spec == "spiral":
        return spiral(val_fraction)
    raise HpsearchError(f"unknown data set {spec!r} (digits, spiral, npz:PATH or cifar10:DIR)")

"""A data set as the built-in classifier trains on it: float32 features, int64 labels, split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    X_train: np.ndarray  # [N, D] float32
    y_train: np.ndarray  # [N] int64
    X_val: np.ndarray
    y_val: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max()) + 1)

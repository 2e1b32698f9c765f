"""A labelled data set held as stored (e.g. uint8 pixels) and converted one batch at a time.

x (N, *shape) raw values; the net sees ``x * scale`` in the run's dtype. y is either integer
class labels (N,), one-hot for every loss, or float targets (N, K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray | None
    name: str
    scale: float = 1.0

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    @property
    def has_classes(self) -> bool:
        """True when y holds integer class labels."""
        return self.y is not None and self.y.ndim == 1

    def inputs(self, idx, dtype) -> np.ndarray:
        """x[idx] as the net's input: (batch, *sample_shape) in ``dtype``."""
        dtype = np.dtype(dtype)
        batch = self.x[idx].astype(dtype)
        if self.scale != 1.0:
            batch *= dtype.type(self.scale)
        return batch

    def targets(self, idx, n_outputs: int, dtype) -> np.ndarray:
        """y[idx] as (batch, n_outputs) targets in ``dtype``; labels become one-hot rows."""
        y = self.y[idx]
        if y.ndim == 1:
            t = np.zeros((len(y), n_outputs), dtype=dtype)
            t[np.arange(len(y)), y] = 1
            return t
        return y.reshape(len(y), -1).astype(dtype, copy=False)

    def subset(self, idx) -> Dataset:
        """The samples ``idx`` (a copy of those rows only)."""
        y = None if self.y is None else self.y[idx]
        return Dataset(self.x[idx], y, self.name, self.scale)

    def reshaped(self, shape) -> Dataset:
        """The same samples seen with per-sample ``shape`` (equal size), e.g. 784 for 1x28x28."""
        return Dataset(self.x.reshape((len(self.x), *shape)), self.y, self.name, self.scale)

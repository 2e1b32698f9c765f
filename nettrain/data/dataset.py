"""A labelled data set held as stored (e.g. uint8 pixels) and converted one batch at a time.

x (M, *stored_shape) raw values; ``rows`` (N,) picks the samples of x this set holds (a hold-out
is a view, not a copy; None: all of x). ``window`` (top, left, h, w) crops (C, H, W) samples to
h x w (the evaluation view of ``augment.crop``). The net sees, per batch, in the run's dtype::

    ((x[rows[idx]] cropped) * scale) * a + b

``scale`` is the built-in scaling of a set (1/255 for MNIST pixels); ``transform`` (a, b) is the
preprocessing (``data.preprocess``), arrays broadcast against one sample. y is either integer
class labels (N,), one-hot for every loss (for a net with one output: 0/1 labels, the targets
of its one sigmoid unit), or float targets (N, K). ``names`` (N,) are the
samples' file names where they come from files (image folders), ``classes`` the class names of
the labels where the data has them (sub-folder names, text labels in a CSV). ``encoding`` is the
column encoding of a table (columns.Encoding; None for other data), ``unseen`` the rows per
column whose category value the encoding's training split never had.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray | None
    name: str
    scale: float = 1.0
    rows: np.ndarray | None = None
    window: tuple | None = None
    transform: tuple | None = None
    names: list | None = None
    classes: list | None = None
    label_note: str | None = None
    encoding: object = None
    unseen: dict | None = None

    def __len__(self) -> int:
        return len(self.x) if self.rows is None else len(self.rows)

    @property
    def sample_shape(self) -> tuple:
        if self.window is not None:
            return (self.x.shape[1], *self.window[2:])
        return tuple(self.x.shape[1:])

    @property
    def has_classes(self) -> bool:
        """True when y holds integer class labels."""
        return self.y is not None and self.y.ndim == 1

    def stored_rows(self, idx) -> np.ndarray:
        """Row numbers in x of the samples ``idx`` (an index array or a slice)."""
        if self.rows is not None:
            return self.rows[idx]
        return np.arange(len(self.x))[idx] if isinstance(idx, slice) else np.asarray(idx)

    def raw(self, idx) -> np.ndarray:
        """The stored values of samples ``idx`` (window applied), a copy of those rows only."""
        rows = idx if self.rows is None else self.rows[idx]
        if self.window is None:
            return self.x[rows]
        top, left, h, w = self.window
        return self.x[rows, :, top : top + h, left : left + w]

    def inputs(self, idx, dtype, augment=None, rng=None, part=None) -> np.ndarray:
        """Samples ``idx`` as the net's input: (batch, *sample_shape) in ``dtype``.

        ``augment`` (an ``augment.Augment``) with its ``rng`` draws a random view of each sample
        instead of the stored one (training batches only); ``part``: see ``Augment.apply``.
        """
        dtype = np.dtype(dtype)
        raw = self.raw(idx) if augment is None else augment.apply(self, idx, rng, part)
        batch = raw.astype(dtype)
        if self.scale != 1.0:
            batch *= dtype.type(self.scale)
        if self.transform is not None:
            a, b = self.transform
            batch *= a.astype(dtype)
            batch += b.astype(dtype)
        return batch

    def targets(self, idx, n_outputs: int, dtype) -> np.ndarray:
        """y[idx] as (batch, n_outputs) targets in ``dtype``; labels become one-hot rows, except
        for a net with one output, whose target is the 0/1 label itself (binary)."""
        y = self.y[idx]
        if y.ndim == 1 and n_outputs == 1:
            return y[:, None].astype(dtype)
        if y.ndim == 1:
            t = np.zeros((len(y), n_outputs), dtype=dtype)
            t[np.arange(len(y)), y] = 1
            return t
        return y.reshape(len(y), -1).astype(dtype, copy=False)

    def subset(self, idx) -> Dataset:
        """The samples ``idx``: a view on the same stored x (only the labels are copied)."""
        y = None if self.y is None else self.y[idx]
        names = None if self.names is None else [self.names[i] for i in idx]
        return replace(self, y=y, rows=self.stored_rows(idx), names=names)

    def reshaped(self, shape) -> Dataset:
        """The same samples seen with per-sample ``shape`` (equal size), e.g. 784 for 1x28x28."""
        return replace(self, x=self.x.reshape((len(self.x), *shape)))

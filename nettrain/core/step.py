"""One training step as the layers see it: passed down the net as a layer's ``train`` argument.

A layer's ``forward(x, train)`` takes ``train`` False in evaluation and, in training, True (a
layer used on its own) or the ``Step`` of a training run, which is truthy, so that layers that
need nothing of it read it as True. The layers that do need it read:

- ``dropout_rng(layer)``: the stream of the step's dropout masks (streams.dropout_rng);
- ``rows`` (lo, hi, n): this process computes rows lo:hi of a batch of n (a rank of a
  data-parallel run), so that it draws the whole batch's masks and keeps its rows; None when it
  computes the whole batch;
- ``allsum(a)``: the float64 sum of ``a`` over the processes of a data-parallel run (batchnorm's
  whole-batch statistics); None in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nettrain.core import streams


@dataclass(frozen=True)
class Step:
    """Training step ``number`` (the optimizer steps taken before it) of a run seeded ``seed``."""

    seed: int = 0
    number: int = 0
    rows: tuple[int, int, int] | None = None
    allsum: Callable[[np.ndarray], np.ndarray] | None = None

    def dropout_rng(self, layer: int) -> np.random.Generator:
        """The generator of layer ``layer``'s dropout mask at this step."""
        return streams.dropout_rng(self.seed, self.number, layer)

    def augment_rng(self) -> np.random.Generator:
        """The generator of this step's augmented views (data.augment)."""
        return streams.augment_rng(self.seed, self.number)

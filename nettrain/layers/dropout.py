"""Dropout: during training each unit is dropped (set to 0) with probability ``drop_prob`` and
the kept ones are scaled by 1 / (1 - drop_prob) ("inverted" dropout), so that evaluation is the
identity. x: (batch, *shape) -> y: same shape.

The mask is drawn from ``self.rng``, which the training loop sets for every step from the run's
seed (see Network.seed_step), so that runs and resumed runs draw the same masks.
"""

from __future__ import annotations

from nettrain.core import streams
from nettrain.core.options import Opt
from nettrain.layers.base import Layer


class Dropout(Layer):
    kind = "dropout"
    OPTIONS = {
        "drop_prob": Opt(
            "float",
            min=0,
            max=1,
            exclusive_max=True,
            doc="probability of DROPPING each unit during training",
        ),
    }
    stochastic = True
    OUTPUT_RANGE = None  # its input's, at evaluation (where the ranges are checked for)
    TORCH = "torch.nn.Dropout"

    flops_per_value = 1

    def __init__(self, index, **options):
        super().__init__(index, **options)
        # Replaced by each training step's generator (Network.seed_step); this one serves a
        # layer used on its own.
        self.rng = streams.dropout_rng(0, 0, index)
        self.rows = None  # (lo, hi, n): rows lo:hi of a batch of n (Network.seed_step)

    def forward(self, x, train=True):
        """saved: the mask (0 or 1 / (1 - drop_prob) per value), None when nothing is dropped."""
        p = self.options["drop_prob"]
        if not train or p == 0:
            return x, None
        if self.rows is None:
            keep = self.rng.random(x.shape, dtype=self.dtype) >= p
        else:  # the whole batch's mask, so that a sample's mask does not depend on its rank
            lo, hi, n = self.rows
            keep = self.rng.random((n, *x.shape[1:]), dtype=self.dtype)[lo:hi] >= p
        mask = keep.astype(self.dtype) / self.dtype.type(1 - p)
        return x * mask, mask

    def backward(self, saved, dy, need_dx=True):
        return dy if saved is None else dy * saved

    def describe(self):
        return f"dropout p={self.options['drop_prob']}"

    def onnx(self, g, x):
        """Nothing: evaluation mode is the identity."""
        return x

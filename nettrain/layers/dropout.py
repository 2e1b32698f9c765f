"""Dropout: during training each unit is dropped (set to 0) with probability ``drop_prob`` and
the kept ones are scaled by 1 / (1 - drop_prob) ("inverted" dropout), so that evaluation is the
identity. x: (batch, *shape) -> y: same shape.

In a training run the mask is drawn from the stream of the step that ``train`` is
(nettrain.core.step.Step: the run's seed, the step, the layer), so that runs and resumed runs
draw the same masks; a layer used on its own (``train`` True) draws from ``self.rng``.
"""

from __future__ import annotations

from nettrain.core import streams
from nettrain.core.options import Opt
from nettrain.core.step import Step
from nettrain.layers.base import Layer


class Dropout(Layer):
    kind = "dropout"
    OPTIONS = {
        "drop_prob": Opt(
            "float",
            min=0,
            max=1,
            exclusive_max=True,
            doc="probability of DROPPING each unit in training; kept units are scaled by "
            "1/(1 - drop_prob); identity at evaluation",
        ),
    }
    stochastic = True
    OUTPUT_RANGE = None  # its input's, at evaluation (where the ranges are checked for)
    TORCH = "torch.nn.Dropout"

    flops_per_value = 1

    def __init__(self, index, **options):
        super().__init__(index, **options)
        self.rng = streams.dropout_rng(0, 0, index)  # a layer used on its own draws from it

    def forward(self, x, train=True):
        """saved: the mask (0 or 1 / (1 - drop_prob) per value), None when nothing is dropped."""
        p = self.options["drop_prob"]
        if not train or p == 0:
            return x, None
        step = train if isinstance(train, Step) else None
        rng = self.rng if step is None else step.dropout_rng(self.index)
        if step is None or step.rows is None:
            keep = rng.random(x.shape, dtype=self.dtype) >= p
        else:  # the whole batch's mask, so that a sample's mask does not depend on its rank
            lo, hi, n = step.rows
            keep = rng.random((n, *x.shape[1:]), dtype=self.dtype)[lo:hi] >= p
        mask = keep.astype(self.dtype) / self.dtype.type(1 - p)
        return x * mask, mask

    def backward(self, saved, dy, need_dx=True):
        return dy if saved is None else dy * saved

    def describe(self):
        return f"dropout p={self.options['drop_prob']}"

    def onnx(self, g, x):
        """Nothing: evaluation mode is the identity."""
        return x

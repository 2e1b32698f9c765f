"""An exponential moving average of the weights (``train.ema``), as TensorFlow's
ExponentialMovingAverage with ``num_updates``, timm's ModelEma and Keras' ``use_ema``: after
optimizer step t (1, 2, ...), every parameter and every state array (batchnorm's running
statistics) of the net is averaged as

    avg <- d * avg + (1 - d) * w,      d = min(ema, (1 + t) / (10 + t)),

from avg = the initial weights. The rate's ramp keeps the first steps from holding the average at
the initial weights for about 1 / (1 - ema) steps. Training itself is unchanged: the optimizer
goes on from its own weights (the "iterate"); the average is what is scored (validation, test,
best.npz's monitor) and what the run hands over: a checkpoint's ``layers.*`` hold the average, its
``optimizer.weights.layers.*`` the iterate, so that predict, evaluate, export, ensembles and
``--weights`` take the averaged net unchanged and ``--resume`` goes on exactly (docs/tuning.md).

The two sets of values are exchanged in place (``swap(net)``): the net's arrays stay the objects
that its layers and the optimizer's state hold. During training the net holds the iterate;
scoring swaps the average in and back out, and a finished (or stopped) training leaves the
average in the net.
"""

from __future__ import annotations

import contextlib

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.options import Opt

OPTION = Opt(  # train.ema
    "float",
    0.0,
    min=0,
    max=1,
    exclusive_max=True,
    doc="average the weights (and batchnorm statistics) over the steps with this decay, e.g. "
    "0.999; scores and checkpoints use the average (0: off)",
)
PREFIX = "optimizer.weights."  # the iterate's checkpoint keys: optimizer.weights.layers.{i}.*


class WeightAverage:
    """The average of a net's arrays, or, while it is swapped in, the iterate."""

    def __init__(self, net, decay: float):
        self.decay = decay
        self.held = {k: a.copy() for k, a in net.arrays().items()}
        self.average_in_net = False

    def rate(self, step: int) -> float:
        """d of optimizer step ``step`` (1 for the first)."""
        return min(self.decay, (1 + step) / (10 + step))

    def update(self, net, step: int) -> None:
        """Average in the net's arrays after optimizer step ``step`` (the net holds the
        iterate)."""
        assert not self.average_in_net, "the average is updated while the net trains"
        d = self.rate(step)
        for name, w in net.arrays().items():  # floats, all of them (nettrain.net.arrays)
            avg = self.held[name]
            avg *= avg.dtype.type(d)
            avg += avg.dtype.type(1 - d) * w

    def swap(self, net) -> None:
        """Exchange the values of the net's arrays and the held ones."""
        for name, a in net.arrays().items():
            held = self.held[name]
            kept = a.copy()
            a[...] = held
            held[...] = kept
        self.average_in_net = not self.average_in_net

    @contextlib.contextmanager
    def scoring(self, net):
        """The average in the net for the body of the ``with``, then the iterate again."""
        self.swap(net)
        try:
            yield
        finally:
            self.swap(net)

    def to_average(self, net) -> None:
        """Leave the average in the net (training over)."""
        if not self.average_in_net:
            self.swap(net)

    def to_iterate(self, net) -> None:
        """Put the iterate in the net (training starts or goes on)."""
        if self.average_in_net:
            self.swap(net)

    def checkpoint_arrays(self, net) -> dict[str, np.ndarray]:
        """``layers.*`` = the average, ``optimizer.weights.layers.*`` = the iterate."""
        in_net, held = net.arrays(), self.held
        average, iterate = (in_net, held) if self.average_in_net else (held, in_net)
        return {**average, **{PREFIX + k: a for k, a in iterate.items()}}

    def load(self, net, arrays: dict, where: str) -> None:
        """The iterate of a checkpoint's ``arrays`` into the net, made (as this average) from
        its ``layers.*``, the average, which stays held."""
        missing = [k for k in self.held if PREFIX + k not in arrays]
        if missing:
            raise UserError(
                where,
                f"no '{PREFIX}{missing[0]}' in the checkpoint, which a run with train.ema writes",
                "start a new run from it with --weights",
            )
        net.load_params({k: arrays[PREFIX + k] for k in self.held}, where)
        self.average_in_net = False

"""Gradient clipping by the norm of all gradients together (``train.clip_grad_norm``), as
PyTorch's ``torch.nn.utils.clip_grad_norm_``: with total the L2 norm of every gradient entry of
the net at once, every gradient is multiplied by min(1, max_norm / (total + 1e-6)). The direction
of the update is kept; only its length is bounded. Under MPI the gradients are the batch's summed
ones, the same on every rank, so every rank clips alike.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.core.options import Opt

EPS = 1e-6  # PyTorch's: keeps the factor finite for a zero gradient
OPTION = Opt(  # train.clip_grad_norm
    "float",
    None,
    min=0,
    exclusive_min=True,
    doc="before each update, scale all gradients by min(1, X / their joint L2 norm) "
    "(PyTorch's clip_grad_norm_; under MPI, of the summed gradient); null: off",
)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale ``grads`` in place so that their joint L2 norm is at most about ``max_norm``;
    returns the norm before clipping (summed in float64)."""
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    factor = max_norm / (total + EPS)
    if factor < 1.0:
        for g in grads.values():
            g *= g.dtype.type(factor)
    return total

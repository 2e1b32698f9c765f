"""Shared test helpers: a finite-difference check of one layer, apart from nettrain.gradcheck."""

from __future__ import annotations

import numpy as np


def layer_grad_errors(layer, x, rng, h=1e-6):
    """Max relative error of ``layer``'s backward against central differences, per tensor.

    The scalar checked is L = sum(forward(x) * R) for a fixed random R, so dL/dy = R. Returns a
    dict {'input': err, 'weight': err, ...} with err = max |a - n| / max(|a|, |n|, 1e-8).
    The layer must already be built (float64) and initialised; x should avoid kinks.
    """
    y = layer.forward(x, train=True)
    R = rng.standard_normal(y.shape)
    dx = layer.backward(R.copy())
    analytic = {"input": dx.copy()}
    analytic.update({name: g.copy() for name, g in layer.grads.items()})

    def loss():
        return float(np.sum(layer.forward(x, train=True) * R))

    tensors = {"input": x, **layer.params}
    errors = {}
    for name, t in tensors.items():
        numeric = np.zeros_like(t)
        flat, nflat = t.reshape(-1), numeric.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + h
            up = loss()
            flat[k] = old - h
            down = loss()
            flat[k] = old
            nflat[k] = (up - down) / (2 * h)
        a = analytic[name]
        scale = np.maximum(np.maximum(np.abs(a), np.abs(numeric)), 1e-8)
        errors[name] = float(np.max(np.abs(a - numeric) / scale))
    return errors


def build(layer_cls, in_shape, index=0, dtype=np.float64, seed=0, **options):
    """A layer built on ``in_shape`` with defaults filled from its OPTIONS, params initialised."""
    opts = {k: o.default for k, o in layer_cls.OPTIONS.items() if not o.required}
    opts.update(options)
    layer = layer_cls(index, **opts)
    layer.build(tuple(in_shape), dtype)
    layer.init_params(np.random.default_rng(seed))
    return layer

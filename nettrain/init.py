"""Weight initialisers, drawn from the run's seeded generator.

fan_in / fan_out count the connections into / out of one unit: for dense (in, out); for conv2d
in_channels*kh*kw and out_channels*kh*kw. ``auto`` picks He for relu (which halves the variance)
and Glorot for the others (sigmoid, tanh, linear, softmax). Biases start at zero.
"""

from __future__ import annotations

import numpy as np

INITIALIZERS = ("auto", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")


def resolve(name: str, activation: str) -> str:
    if name != "auto":
        return name
    return "he_normal" if activation == "relu" else "glorot_uniform"


def draw(name: str, activation: str, shape, fan_in: int, fan_out: int, rng, dtype) -> np.ndarray:
    """An array of ``shape`` drawn by initialiser ``name`` (``auto`` resolved by activation)."""
    name = resolve(name, activation)
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    elif name == "glorot_normal":
        w = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    elif name == "he_uniform":
        limit = np.sqrt(6.0 / fan_in)
        w = rng.uniform(-limit, limit, size=shape)
    elif name == "he_normal":
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    else:
        raise ValueError(f"unknown initialiser {name}")
    return w.astype(dtype)

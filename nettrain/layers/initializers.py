"""Weight initialisers, drawn from the run's seeded generator.

fan_in / fan_out count the connections into / out of one unit: for dense (in, out); for conv2d
in_channels*kh*kw and out_channels*kh*kw. ``auto`` picks He normal for relu and leaky_relu
(which halve the variance) and Glorot uniform for the others (sigmoid, tanh, linear, softmax).
Biases start at 0.

In a config: ``init: he_uniform``, or with a parameter ``init: {name: uniform, range: 0.05}``
(U(-range, range)), ``init: {name: normal, std: 0.01}`` (N(0, std^2)).
"""

from __future__ import annotations

import numpy as np

from nettrain.core.options import Opt

INITIALIZERS = {
    "auto": {},
    "glorot_uniform": {},
    "glorot_normal": {},
    "he_uniform": {},
    "he_normal": {},
    "uniform": {"range": Opt("float", 0.05, min=0, exclusive_min=True, doc="U(-range, range)")},
    "normal": {"std": Opt("float", 0.01, min=0, exclusive_min=True, doc="N(0, std^2)")},
}
INIT_OPTION = Opt(
    "named",
    {"name": "auto"},
    extra={"table": INITIALIZERS},
    doc="weight initialiser: auto (He normal for relu and leaky_relu, Glorot uniform otherwise), "
    "a name, or a mapping with options, e.g. {name: uniform, range: 0.1}",
)


def draw(spec, activation: str, shape, fan_in: int, fan_out: int, rng, dtype) -> np.ndarray:
    """An array of ``shape`` drawn as ``spec`` says (a name or {name, range|std})."""
    spec = {"name": spec} if isinstance(spec, str) else spec
    name = spec["name"]
    if name == "auto":
        name = "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"
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
    elif name == "uniform":
        r = spec.get("range", INITIALIZERS["uniform"]["range"].default)
        w = rng.uniform(-r, r, size=shape)
    elif name == "normal":
        w = rng.normal(0.0, spec.get("std", INITIALIZERS["normal"]["std"].default), size=shape)
    else:
        raise ValueError(f"unknown initialiser {name}")
    return w.astype(dtype)

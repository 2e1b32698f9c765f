"""Generated data sets for quick experiments and tests: xor, spirals, circles, moons, blobs.

Each set is 2-D points (blobs: ``features``-D) with integer class labels. The training set is
drawn from stream ``[seed, 100]`` and the test set from ``[seed, 101]`` (nettrain.core.streams): two
independent draws of one distribution; the blob centres, shared by both, from ``[seed, 102]``.
``seed`` is the data set's own (default 0), so changing the run's seed changes the initial
weights, not the data. ``noise`` is the standard deviation of Gaussian noise added to every
coordinate (blobs: of each cluster around its centre).

- xor: points uniform in [-1, 1]^2, class 1 where x0 and x1 differ in sign;
- spirals: ``classes`` arms, each three quarters of a turn from the centre to radius 1;
- circles: class 0 on the circle of radius 1, class 1 on radius 0.5;
- moons: two interleaved half circles (scikit-learn's make_moons);
- blobs: ``classes`` clusters around centres uniform in [-5, 5]^features.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.core import streams
from nettrain.core.options import Opt
from nettrain.data.dataset import Dataset


def _options(noise: float, **extra) -> dict:
    return {
        "n": Opt("int", 1000, min=1, doc="training samples"),
        "n_test": Opt("int", None, min=1, doc="test samples; default n / 4, rounded up"),
        "noise": Opt("float", noise, min=0, doc="standard deviation of the noise"),
        **extra,
        "seed": Opt("int", 0, min=0, doc="seed of the data (not of the run)"),
    }


def _classes(default: int) -> dict:
    return {"classes": Opt("int", default, min=2, doc="number of classes")}


GENERATED = {
    "xor": _options(0.05),
    "spirals": _options(0.05, **_classes(2)),
    "circles": _options(0.05),
    "moons": _options(0.1),
    "blobs": _options(
        1.0, **_classes(3), features=Opt("int", 2, min=1, doc="dimensions of each point")
    ),
}


def resolved(spec: dict) -> dict:
    """The spec with every default filled in (n_test from n)."""
    if spec["name"] in GENERATED and spec.get("n_test") is None:
        spec = {**spec, "n_test": math.ceil(spec["n"] / 4)}
    return spec


def make(spec: dict) -> tuple[Dataset, Dataset]:
    """(train, test) of a resolved ``data.dataset`` mapping naming a generated set."""
    spec = resolved(spec)
    name, seed = spec["name"], spec["seed"]
    sets = []
    for split, n, stream in (
        ("train", spec["n"], streams.GENERATED_TRAIN),
        ("test", spec["n_test"], streams.GENERATED_TEST),
    ):
        x, y = GENERATORS[name](streams.generated_rng(seed, stream), n, spec)
        sets.append(Dataset(x, y, f"{name}/{split}"))
    return sets[0], sets[1]


def shapes(spec: dict) -> tuple[int, int, int]:
    """(features, classes, test samples) of a resolved spec, without generating anything."""
    spec = resolved(spec)
    return spec.get("features", 2), spec.get("classes", 2), spec["n_test"]


def _noisy(rng, x, noise):
    return x + noise * rng.standard_normal(x.shape)


def _xor(rng, n, spec):
    x = rng.uniform(-1, 1, (n, 2))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int64)
    return _noisy(rng, x, spec["noise"]), y


def _spirals(rng, n, spec):
    k = spec["classes"]
    y = rng.integers(0, k, n)
    t = rng.uniform(0, 1, n)  # position along the arm, centre to rim
    angle = 2 * np.pi * (y / k + 0.75 * t)
    x = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _noisy(rng, x, spec["noise"]), y


def _circles(rng, n, spec):
    y = rng.integers(0, 2, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 0, 1.0, 0.5)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _noisy(rng, x, spec["noise"]), y


def _moons(rng, n, spec):
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, np.pi, n)
    x = np.stack(
        [np.where(y == 0, np.cos(t), 1 - np.cos(t)), np.where(y == 0, np.sin(t), 0.5 - np.sin(t))],
        axis=1,
    )
    return _noisy(rng, x, spec["noise"]), y


def _blobs(rng, n, spec):
    centres = streams.generated_rng(spec["seed"], streams.GENERATED_CENTRES).uniform(
        -5, 5, (spec["classes"], spec["features"])
    )
    y = rng.integers(0, spec["classes"], n)
    return _noisy(rng, centres[y], spec["noise"]), y


GENERATORS = {
    "xor": _xor,
    "spirals": _spirals,
    "circles": _circles,
    "moons": _moons,
    "blobs": _blobs,
}

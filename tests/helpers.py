"""Shared test helpers: a finite-difference check of one layer (apart from
nettrain.tools.gradcheck), layers built and run by hand, blob data sets, interrupted and
resumed fits, CLI calls."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from nettrain import checkpoint
from nettrain.cli.commands import cli
from nettrain.training import loop
from nettrain.training.fit import fit


def layer_grad_errors(layer, x, rng, h=1e-6):
    """Max relative error of ``layer``'s backward against central differences, per tensor.

    The scalar checked is L = sum(forward(x) * R) for a fixed random R, so dL/dy = R. Returns a
    dict {'input': err, 'weight': err, ...} with err = max |a - n| / max(|a|, |n|, 1e-8).
    The layer must already be built (float64) and initialised; x should avoid kinks. A
    stochastic layer (dropout) draws the same values on every pass.
    """

    def forward():
        if layer.stochastic:
            layer.rng = np.random.default_rng(9)
        return layer.forward(x, train=True)

    y, saved = forward()
    R = rng.standard_normal(y.shape)
    dx = layer.backward(saved, R.copy())
    analytic = {"input": dx.copy()}
    analytic.update({name: g.copy() for name, g in layer.grads.items()})

    def loss():
        return float(np.sum(forward()[0] * R))

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


def build(layer_cls, in_shape, index=0, dtype=np.float64, seed=0, fused=None, **options):
    """A layer built on ``in_shape`` with defaults filled from its OPTIONS, params initialised;
    ``fused``: the activation it applies in its kernels, as the network builder would ask."""
    opts = {k: o.default for k, o in layer_cls.OPTIONS.items() if not o.required}
    opts.update(options)
    layer = layer_cls(index, fused=fused, **opts)
    layer.build(tuple(in_shape), dtype)
    layer.init_params(np.random.default_rng(seed))
    return layer


def blobs(rng, centers, n):
    """n samples of Gaussian blobs around ``centers`` (3, 4): x float32 (n, 4), y labels (n,)."""
    y = rng.integers(0, len(centers), n)
    return (centers[y] + rng.standard_normal((n, 4))).astype(np.float32), y


def write_blobs(folder, sizes=(("train", 90), ("test", 30)), seed=0):
    """Blob data sets as folder/{name}.npz (arrays x, y); returns the generator, drawn on."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 4)) * 3
    for name, n in sizes:
        x, y = blobs(rng, centers, n)
        np.savez(folder / f"{name}.npz", x=x, y=y)
    return rng


def blob_configs(folder, text: str):
    """make(*sets) -> (resolved config, its ConfigSource): the config ``text`` (its ``{train}``
    the path of 64 blob samples written into ``folder``) with the ``--set`` overrides ``sets``."""
    from nettrain.config import ConfigSource, validate

    write_blobs(folder, sizes=(("train", 64),))

    def make(*sets):
        src = ConfigSource.from_text(text.format(train=folder / "train.npz"), "c.yaml")
        src.apply_overrides(sets)
        return validate(src), src

    return make


class StopAfter:
    """Stands in for loop.StopFlag: 'Ctrl-C' arrives after ``n`` reads of the flag (the loop
    reads it after every batch and at every epoch's end)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    @property
    def raised(self):
        self.n -= 1
        return self.n < 0


def run_layer(layer, x, dy=None, train=True):
    """(y, dx) of a forward (training unless ``train`` is False) and, with dy, the backward."""
    y, saved = layer.forward(np.asarray(x, dtype=layer.dtype), train=train)
    return y, (None if dy is None else layer.backward(saved, np.asarray(dy, dtype=layer.dtype)))


def same_bits_on_1_and_2_threads(case) -> None:
    """case() -> a tuple of arrays, run with Numba on one thread and on two: equal bit for bit."""
    import numba

    previous, results = numba.get_num_threads(), []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(case())
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)


def net_arrays(path) -> dict:
    """The net's arrays (weights and state, ``layers.*``) in a checkpoint."""
    arrays, _ = checkpoint.load(path)
    return {k: v for k, v in arrays.items() if k.startswith("layers.")}


def without_seconds(rows) -> list:
    """fit's epoch rows without their timings, which differ from run to run."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def interrupt_and_resume(cfg, src, folder, monkeypatch, reads):
    """Fits into ``folder`` with 'Ctrl-C' after ``reads`` reads of the stop flag, then resumes
    from its last.npz; returns (the interrupted checkpoint's meta, the resumed fit's rows)."""
    monkeypatch.setattr(loop, "StopFlag", lambda: StopAfter(reads))
    with pytest.raises(loop.Interrupted):
        fit(cfg, src, folder=folder)
    monkeypatch.undo()
    arrays, meta = checkpoint.load(folder / "last.npz")
    rows = fit(cfg, src, folder=folder, resume=folder / "last.npz").rows
    return meta, rows


def invoke(*args, code=0):
    """``nettrain ARGS`` in-process; asserts its exit code (unless ``code`` is None) and that no
    traceback was printed. Tests take it as the ``cli_call`` fixture (conftest.py)."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if code is None:
        return result
    assert result.exit_code == code, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        f"exception: {result.exception!r}"
    )
    assert "Traceback" not in result.stderr
    return result

"""Thread settings: --threads works before and after Numba has started its pool."""

import os

import numpy as np
from click.testing import CliRunner

from nettrain.cli import cli
from nettrain.layers.maxpool2d import MaxPool2d
from nettrain.threads import configure


def test_configure_after_numba_started_keeps_compiling():
    import numba

    MaxPool2d(0, size=[2, 2], stride=None)  # imports the kernels
    configure(1)
    assert numba.get_num_threads() == 1
    configure(2)
    layer = MaxPool2d(0, size=[2, 2], stride=None)
    layer.build((1, 4, 4), np.float32)
    y = layer.forward(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(y.reshape(-1), [5, 7, 13, 15])


def test_threads_option_sets_the_thread_count(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: {input: [3], layers: [{type: dense, units: 2}], loss: squared_error}")
    for threads in ("1", "2", "1"):
        result = CliRunner().invoke(cli, ["--threads", threads, "summary", str(config)])
        assert result.exit_code == 0, result.output


def test_openblas_threads_spin_briefly_unless_the_user_says_otherwise(monkeypatch):
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None  # leave the count as it is
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    configure(threads)
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "20"
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "20")
    configure(threads)
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "20"


def test_results_do_not_depend_on_the_thread_count():
    """conv2d (direct and strided), max-pooling and dense+tanh, forward and backward, with one
    thread and with two: work is split by sample and sums run in sample order, so the bits agree."""
    from helpers import build

    from nettrain.layers.conv2d import Conv2d
    from nettrain.layers.dense import Dense

    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 3, 9, 9)).astype(np.float32)
    layers = [
        build(Conv2d, (3, 9, 9), dtype=np.float32, filters=5, kernel=3, padding="same"),
        build(Conv2d, (3, 9, 9), dtype=np.float32, filters=4, kernel=3, stride=2),
        build(MaxPool2d, (3, 9, 9), dtype=np.float32, size=[3, 3], stride=None),
        build(Dense, (3, 9, 9), dtype=np.float32, units=7),
    ]
    layers[0].fused_relu = layers[3].fused_tanh = True
    results = []
    for count in (1, 2):
        configure(count)
        out = []
        for layer in layers:
            y = layer.forward(x)
            dx = layer.backward(np.ones_like(y) * 0.5 + y)
            out += [y, dx, *(g.copy() for g in layer.grads.values())]
        results.append(out)
    configure(threads)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)

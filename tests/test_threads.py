"""Thread settings: --threads works before and after Numba has started its pool. (That every
layer's results do not depend on the thread count: test_layer_table.py.)"""

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
    y, _ = layer.forward(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
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

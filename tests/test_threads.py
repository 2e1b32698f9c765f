"""Thread settings: --threads works before and after Numba has started its pool. (That every
layer's results do not depend on the thread count: test_layer_table.py.)"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import nettrain.threads as threads_module
from nettrain.blas import blocks, matmul
from nettrain.cli import cli
from nettrain.layers.maxpool2d import MaxPool2d
from nettrain.threads import active_threads, configure, max_threads


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


def test_blas_calls_are_single_threaded_and_nettrain_shares_out_the_blocks():
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None  # leave the count as it is
    configure(threads)
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert int(os.environ["NETTRAIN_THREADS"]) == max_threads() >= active_threads() >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 784, 256), (784, 64, 256), (1000, 300, 70), (5, 7, 3)])
def test_blocked_products_give_the_same_bits_for_any_thread_count(shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None
    results = []
    for count in (1, 2, 3):
        configure(count)
        results += [matmul(a, b), matmul(np.asfortranarray(a), b)]
    configure(threads)
    for r in results[1:]:
        np.testing.assert_array_equal(results[0], r)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[0], a.astype(np.float64) @ b, rtol=tolerance, atol=tolerance)
    out = np.empty((m, n), dtype)
    assert matmul(a, b, out=out) is out


def test_blocks_depend_on_the_shapes_only_and_cover_the_product():
    for m, k, n in [(64, 784, 256), (784, 64, 256), (3, 3, 3), (4096, 10, 4096)]:
        axis, parts = blocks(m, k, n)
        span = (m, n)[axis]
        assert parts[0][0] == 0 and parts[-1][1] == span
        assert all(a < b for a, b in parts)
        assert all(p[1] == q[0] for p, q in zip(parts, parts[1:], strict=False))
    assert blocks(5, 7, 3) == (0, [(0, 5)])  # too small to be worth a thread


class FakeClock:
    """Stands in for /proc: ``others`` cores busy in other processes, this one idle."""

    def __init__(self, monkeypatch):
        self.now, self.busy, self.others = 100.0, 0, 0.0
        monkeypatch.setattr(threads_module.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(threads_module, "_cpu_times", lambda: (int(self.busy), 0))
        monkeypatch.setattr(threads_module, "cpu_count", lambda: 2)

    def tick(self, seconds=0.6):
        self.now += seconds
        self.busy += self.others * seconds * os.sysconf("SC_CLK_TCK")
        return threads_module.adapt()


def test_adapt_gives_up_a_core_another_process_holds_and_takes_it_back(monkeypatch):
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 2)
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None
    clock = FakeClock(monkeypatch)
    configure(2)
    try:
        assert clock.tick() == 2  # first measurement: nothing to compare yet
        assert clock.tick() == 2  # idle machine: both cores
        clock.others = 1.0
        assert clock.tick() == 1  # another job holds a core: give it up at once
        assert clock.tick() == 1
        clock.others = 0.0
        assert clock.tick() == 1  # one idle measurement is not enough to take it back
        assert clock.tick() == 2
        clock.others = 2.5  # more busy than there are cores: still one thread
        assert clock.tick() == 1
        clock.now += 0.1  # within the window: no new measurement
        clock.others = 0.0
        assert threads_module.adapt() == 1
    finally:
        monkeypatch.undo()
        configure(threads)


def test_adapt_sees_a_real_busy_process():
    """A busy loop in another process takes one core: nettrain uses the others (at least 1)."""
    if threads_module.cpu_count() < 2 or not threads_module._readable():
        pytest.skip("needs 2 cores and /proc")
    previous = max_threads()
    configure(2)
    spin = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and threads_module.adapt() == max_threads():
            time.sleep(0.05)
        assert active_threads() < max_threads()
    finally:
        busy.kill()
        busy.wait()
        configure(previous)

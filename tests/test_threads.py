"""Thread settings: --threads works before and after Numba has started its pool. (That every
layer's results do not depend on the thread count: test_layer_table.py.)"""

import ctypes
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import nettrain.runtime.threads as threads_module
from nettrain.layers.maxpool2d import MaxPool2d
from nettrain.runtime.threads import active_threads, configure, max_threads


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


def test_threads_option_sets_the_thread_count(tmp_path, monkeypatch, cli_call):
    """``--threads N`` reaches configure() and is the count in force, kept (not adapted)."""
    import numba

    monkeypatch.delenv("NETTRAIN_THREADS", raising=False)
    given = []
    real_configure = threads_module.configure
    monkeypatch.setattr(
        threads_module, "configure", lambda t=None: given.append(t) or real_configure(t)
    )
    config = tmp_path / "c.yaml"
    config.write_text("model: {input: [3], layers: [{type: dense, units: 2}], loss: squared_error}")
    previous = max_threads()
    try:
        for threads in (1, 2, 1):
            cli_call("--threads", threads, "summary", config)
            assert given[-1] == threads
            assert max_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
            assert not threads_module.adaptive()
    finally:
        real_configure(previous)


@pytest.fixture(params=[1, 2, 8, 64])
def cores(request, monkeypatch):
    """A machine of 1, 2, 8 or 64 cores, as nettrain.runtime.threads sees it (os.cpu_count,
    os.sched_getaffinity); Numba's pool and OpenBLAS are left as they are (the count in force is
    only recorded), and the thread state and the environment are restored afterwards."""
    import numba

    n = request.param
    saved_state, saved_env = dict(threads_module._state), dict(os.environ)
    real_set_active = threads_module._set_active
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: n)
    monkeypatch.setattr(
        threads_module.os, "sched_getaffinity", lambda pid: set(range(n)), raising=False
    )
    # configure() caps a count at Numba's pool, which _set_active (faked) never resizes here
    monkeypatch.setattr(
        numba.config, "NUMBA_NUM_THREADS", max(n, 2, numba.config.NUMBA_NUM_THREADS)
    )
    monkeypatch.setattr(
        threads_module, "_set_active", lambda c: threads_module._state.update(active=c)
    )
    monkeypatch.delenv("NETTRAIN_THREADS", raising=False)
    yield n
    monkeypatch.undo()
    os.environ.clear()
    os.environ.update(saved_env)
    threads_module._state.clear()
    threads_module._state.update(saved_state)
    real_set_active(saved_state["active"])


def test_cores_fakes_the_count_that_threads_reads(cores):
    assert threads_module.cpu_count() == cores
    assert configure() == cores and active_threads() == cores


def test_a_given_count_is_kept_and_the_default_adapts(cores, monkeypatch):
    assert configure(1) == 1 and not threads_module.adaptive()
    monkeypatch.setenv("NETTRAIN_THREADS", "2")
    assert configure() == 2 and not threads_module.adaptive()
    monkeypatch.delenv("NETTRAIN_THREADS")
    assert configure() == cores
    assert threads_module.adaptive() == (cores > 1)


def test_openblas_threads_spin_briefly_unless_the_user_says_otherwise(monkeypatch):
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None  # leave the count as it is
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    configure(threads)
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "20"
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    configure(threads)
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "4"


def test_openmp_threads_sleep_at_once_unless_the_user_says_otherwise():
    """Set before Numba starts (a fresh process, as the CLI runs): its OpenMP threads must not
    spin on the cores the next BLAS product needs."""
    script = (
        "from nettrain.runtime import threads; threads.configure(1); import os; "
        "print(os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    run = [sys.executable, "-c", script]
    out = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "0"]
    env["GOMP_SPINCOUNT"] = "5000"
    out = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["5000", "0"]


def openblas_threads() -> int | None:
    """OpenBLAS's own idea of its thread count, where its getter can be found."""
    with open("/proc/self/maps") as f:
        paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower()})
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_"):
            if hasattr(lib, name):
                return getattr(lib, name)()
    return None


def test_the_active_count_reaches_numba_and_openblas():
    import numba

    previous = max_threads()
    try:
        configure(2)
        threads_module._set_active(1)
        assert numba.get_num_threads() == 1 and active_threads() == 1
        assert openblas_threads() in (1, None)
        threads_module._set_active(2)
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
        assert openblas_threads() in (2, None)
    finally:
        configure(previous)


class FakeClock:
    """Stands in for /proc: ``others`` cores busy in other processes, this one idle."""

    def __init__(self, monkeypatch):
        self.now, self.busy, self.others = 100.0, 0, 0.0
        monkeypatch.setattr(threads_module.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(threads_module, "_cpu_times", lambda: (int(self.busy), 0))
        monkeypatch.setattr(threads_module, "_readable", lambda: True)

    def tick(self, seconds=0.6):
        self.now += seconds
        self.busy += self.others * seconds * os.sysconf("SC_CLK_TCK")
        return threads_module.adapt()


def test_adapt_gives_up_a_core_another_process_holds_and_takes_it_back(cores, monkeypatch):
    clock = FakeClock(monkeypatch)
    configure(cores, adapt_to_load=True)
    one_less = max(1, cores - 1)
    assert clock.tick() == cores  # first measurement: nothing to compare yet
    assert clock.tick() == cores  # idle machine: every core
    clock.others = 1.0
    assert clock.tick() == one_less  # another job holds a core: give it up at once
    assert threads_module.changes() == (cores > 1)
    assert clock.tick() == one_less
    clock.others = 0.0
    assert clock.tick() == one_less  # one idle measurement is not enough to take it back
    assert clock.tick() == cores
    clock.others = cores + 0.5  # more busy than there are cores: still one thread
    assert clock.tick() == 1
    clock.now += 0.1  # within the window: no new measurement
    clock.others = 0.0
    assert threads_module.adapt() == 1


def test_adapt_sees_a_real_busy_process(cores):
    """A busy loop in another process takes one core: nettrain uses the others (at least 1).
    The machine's own load may take more, never fewer: the count in force ends below the
    configured one on any machine with two or more (faked) cores, and one stays one."""
    if not threads_module._readable():
        pytest.skip("needs /proc")
    configure(cores, adapt_to_load=True)
    spin = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass\n"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        # a hang guard only: the busy process is seen in the first measurement after it runs
        deadline = time.monotonic() + 120
        while threads_module.adapt() == cores and cores > 1:
            assert time.monotonic() < deadline, "adapt never saw the busy process"
            time.sleep(0.05)
        assert 1 <= active_threads() < cores or active_threads() == cores == 1
    finally:
        busy.kill()
        busy.wait()

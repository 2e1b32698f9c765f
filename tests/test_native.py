"""Parallel loops calling serial kernels through their addresses (nettrain/runtime/native.py):
each kernel version gets its row, the loop finds the one for its types, and every index is done.
(The conv2d kernels that use it are compared with slow references in test_conv2d_kernels.py.)"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from nettrain.runtime import native


@njit
def _affine(x, a, out, i):
    """out[i] = a x[i] + i."""
    out[i] = a * x[i] + i


@njit
def _square(x, a, out, i):
    """out[i] = x[i]^2 (a unused): the same signature as _affine."""
    out[i] = x[i] * x[i]


@njit
def _loop(table, x, a, out):
    return native.parallel(table, (x, a, out), len(x))


def test_every_index_by_the_kernel_of_the_table():
    affine, square = native.Kernel(_affine), native.Kernel(_square)
    for dtype in (np.float32, np.float64):
        x = np.arange(37, dtype=dtype) - 5
        out = np.zeros_like(x)
        native.run(_loop, affine, x, 2.0, out)
        np.testing.assert_array_equal(out, 2 * x + np.arange(37))
        native.run(_loop, square, x, 2.0, out)  # same loop, same types, the other kernel
        np.testing.assert_array_equal(out, x * x)
    assert affine.table.shape == (2, 2)  # a row per compiled version: float32 and float64
    assert len(set(affine.table[:, 0])) == 2 and len(set(affine.table[:, 1])) == 2


def test_a_loop_without_its_version_says_so():
    kernel = native.Kernel(_affine)
    x = np.ones(3)
    assert not _loop(np.zeros((0, 2), np.int64), x, 1.0, np.zeros(3))
    native.run(_loop, kernel, x, 1.0, np.zeros(3))  # adds it
    assert _loop(kernel.table, x, 1.0, np.zeros(3))


@njit
def _converting_loop(table, x, a, out):
    # not its own arguments' types: never finds a version
    return native.parallel(table, (x, np.float32(a), out), len(x))


def test_kernels_and_loops_that_do_not_fit_are_errors():
    @njit
    def no_index(x, a, out):
        out[0] = a

    with pytest.raises(TypeError):
        native.run(_loop, native.Kernel(no_index), np.ones(3), 1.0, np.zeros(3))
    with pytest.raises(RuntimeError, match="other types"):
        native.run(_converting_loop, native.Kernel(_affine), np.ones(3), 1.0, np.zeros(3))


SCRATCH = """
import sys
import numpy as np
from numba import njit
from nettrain.runtime import native


@njit(cache=True)
def kernel(x, out, i):
    out[i] = 2 * x[i] + 1


@njit(cache=True)
def loop(table, x, out):
    return native.parallel(table, (x, out), len(x))


x = np.arange(40.0)
out = np.zeros_like(x)
native.run(loop, native.Kernel(kernel), x, out)
assert np.array_equal(out, 2 * x + 1)
print("ok")
"""


def test_a_loop_recompiled_after_its_file_changed_loads_from_the_cache(tmp_path):
    """A cached loop compiled again (its file changed: an upgrade, an edit) in a process that
    found native.parallel's version in Numba's cache was itself cached broken, and the next
    process crashed (a segmentation fault) on its first call; native.parallel is not cached."""
    script = tmp_path / "scratch_loop.py"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run():
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

    script.write_text(SCRATCH)
    run()  # everything compiled and cached
    script.write_text(SCRATCH + "# changed\n")
    run()  # the loop and kernel compiled again; native.parallel as the first run left it
    run()  # all from the cache

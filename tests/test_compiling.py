"""The line on stderr while kernels compile: once on a first run (an empty Numba cache), with
the time it took; not when the kernels load from the cache, not under --quiet, not from the
Python API unless verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nettrain.runtime.compiling import MESSAGE

REPO = Path(__file__).resolve().parents[1]
CONFIG = """seed: 0
dtype: float32
data:
  dataset: {name: blobs, n: 64, classes: 3, features: 4}
model:
  layers:
    - {type: dense, units: 5, activation: tanh}
    - {type: dense, units: 3}
    - {type: softmax}
  loss: multinomial_cross_entropy
train: {epochs: 1, batch_size: 32}
"""


def run(args, cache: Path) -> str:
    """stderr of ``python ARGS`` with the Numba cache in ``cache``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(cache),
           "NETTRAIN_THREADS": "1"}  # fmt: skip
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


def fit(tmp_path: Path, cache: Path, name: str, *extra) -> str:
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG)
    return run(["-m", "nettrain", "fit", config, "--out", tmp_path / name, *extra], cache)


def test_a_first_run_says_it_compiles_once_and_a_second_run_does_not(tmp_path):
    first = fit(tmp_path, tmp_path / "cache", "a").splitlines()
    assert first.count(MESSAGE) == 1, first
    timed = [line for line in first if line.startswith("kernels compiled in ")]
    assert len(timed) == 1 and timed[0].endswith(" s"), first
    assert first.index(timed[0]) == first.index(MESSAGE) + 1  # said after the first batch
    second = fit(tmp_path, tmp_path / "cache", "b")  # the kernels load from the cache
    assert MESSAGE not in second and "compiled" not in second, second


def test_quiet_and_the_python_api_say_nothing_while_compiling(tmp_path):
    assert fit(tmp_path, tmp_path / "quiet", "a", "--quiet") == ""
    (tmp_path / "tiny.yaml").write_text(CONFIG)
    code = (
        "import sys, nettrain; m = nettrain.Model.from_config(sys.argv[1]); m.fit(); "
        "m = nettrain.Model.from_config(sys.argv[1]); m.fit(verbose=True)"
    )
    stderr = run(["-c", code, tmp_path / "tiny.yaml"], tmp_path / "api")
    # the first fit compiles silently; the verbose one finds the kernels compiled in-process
    assert MESSAGE not in stderr, stderr
    verbose = "import sys, nettrain; nettrain.Model.from_config(sys.argv[1]).fit(verbose=True)"
    stderr = run(["-c", verbose, tmp_path / "tiny.yaml"], tmp_path / "api-verbose")
    assert stderr.splitlines().count(MESSAGE) == 1, stderr

"""SIGKILL while a run writes checkpoints: every file in the run folder stays whole.

A real `python -m nettrain fit` writes last.npz after every step (train.checkpoint.every_steps:
1) and is killed at a random moment, five times, each time resumed from what it left. After each
kill every .npz in the run folder must load (checksum included), metrics.csv and config.yaml must
parse, and the run must not go backwards; at the end the run resumes to completion.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nettrain import checkpoint
from nettrain.config import load_config

CONFIG = """\
seed: 0
data:
  train: train.npz
model:
  layers:
    - {type: dense, units: 16, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 100
  batch_size: 4
  checkpoint: {every_steps: 1, keep: true}
"""

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def start(folder: Path, *extra) -> subprocess.Popen:
    """`python -m nettrain fit` on folder/c.yaml, its stderr appended to folder/stderr.log."""
    env = {**os.environ, "NETTRAIN_THREADS": "1"}
    args = [sys.executable, "-m", "nettrain", "fit", str(folder / "c.yaml"), "--quiet", *extra]
    with open(folder / "stderr.log", "a") as log:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=folder)


def check_run_folder(run: Path) -> dict:
    """Every file whole: the .npz load, the CSV and YAML parse. The meta of last.npz."""
    for path in run.glob("*.npz"):
        checkpoint.load(path)  # raises on a truncated or damaged file
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["epoch", "train_loss"]
    assert all(len(row) == len(rows[0]) for row in rows[1:])
    assert isinstance(yaml.safe_load((run / "config.yaml").read_text()), dict)
    load_config(run / "config.yaml")  # and it is a valid config
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert all(name.endswith(".tmp") for name in leftovers), leftovers
    return checkpoint.load(run / "last.npz")[1]


def test_sigkill_never_leaves_a_damaged_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=rng.integers(0, 3, 400))
    (tmp_path / "c.yaml").write_text(CONFIG)
    run = tmp_path / "run"
    delays = random.Random(6)
    last_step = -1
    for kill in range(5):
        resume = ["--resume", str(run / "last.npz")] if (run / "last.npz").exists() else []
        proc = start(tmp_path, "--out", str(run), "--overwrite", *resume)
        # wait until this process writes checkpoints, then kill it at a random moment
        marker = run / "last.npz"
        before = marker.stat().st_mtime_ns if marker.exists() else None
        deadline = time.monotonic() + 60
        while not marker.exists() or marker.stat().st_mtime_ns == before:
            assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.005)
        time.sleep(delays.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        meta = check_run_folder(run)
        assert meta["step"] > last_step, f"kill {kill}: the run went back to step {meta['step']}"
        last_step = meta["step"]
    # the run folder a kill left behind continues to the end of the current epoch
    proc = start(
        tmp_path, "--resume", str(run / "last.npz"), "--set", f"train.epochs={meta['epoch'] + 1}"
    )
    assert proc.wait(timeout=120) == 0, (tmp_path / "stderr.log").read_text()
    meta = check_run_folder(run)
    assert meta["epoch"] == meta["config"]["train"]["epochs"] and meta["partial"] is None
    assert not list(run.glob(".*.tmp")), "the resumed run clears the half-written files"

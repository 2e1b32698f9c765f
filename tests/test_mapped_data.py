"""Data larger than memory: .npy files and uncompressed .npz members are memory-mapped, and
`nettrain convert` writes a CSV (or IDX, image folder, .npz) in that layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from nettrain.data.sources import read, resolve

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NETTRAIN_THREADS": "1"}

CONFIG = """
seed: 1
dtype: float64
data: {{train: {train}, validation: 0.2}}
model:
  layers: [{{type: dense, units: 6, activation: tanh}}, {{type: dense, units: 3}}, softmax]
  loss: multinomial_cross_entropy
train: {{epochs: 2, batch_size: 16, optimizer: {{name: sgd, lr: 0.1}}}}
"""


def nettrain(*args, cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nettrain", *args]
    return subprocess.run(cmd, env=ENV, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_uncompressed_npz_and_npy_are_memory_mapped_compressed_npz_is_read(tmp_path):
    x, y = np.arange(60.0).reshape(10, 6), np.arange(10) % 3
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    plain = read(resolve(str(tmp_path / "plain.npz")))
    packed = read(resolve(str(tmp_path / "packed.npz")))
    pair = read({"x": str(tmp_path / "x.npy"), "y": str(tmp_path / "y.npy")})
    assert isinstance(plain.x, np.memmap) and isinstance(pair.x, np.memmap)
    assert not isinstance(packed.x, np.memmap)
    for ds in (plain, packed, pair):
        assert np.array_equal(ds.x, x) and np.array_equal(ds.y, y)
        assert np.array_equal(ds.inputs(np.array([7, 2]), np.float64), x[[7, 2]])


def test_converted_csv_trains_to_the_same_weights(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 4))
    labels = np.array(["a", "b", "c"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
    rows = ["f1,f2,f3,f4,label"] + [
        ",".join(f"{v:.6f}" for v in r) + f",{lab}" for r, lab in zip(x, labels, strict=True)
    ]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    done = nettrain("convert", "d.csv", "arrays", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # a table's features are float32 (docs/csv.md)
    assert "x float32 (80, 4)" in done.stdout and "a, b, c" in done.stderr
    (tmp_path / "csv.yaml").write_text(CONFIG.format(train="d.csv"))
    (tmp_path / "npy.yaml").write_text(CONFIG.format(train="{x: arrays/x.npy, y: arrays/y.npy}"))
    for name in ("csv", "npy"):
        run = nettrain("fit", f"{name}.yaml", "--out", name, "--quiet", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    with np.load(tmp_path / "csv" / "last.npz") as a, np.load(tmp_path / "npy" / "last.npz") as b:
        for k in a.files:
            if k.startswith("layers."):
                assert np.array_equal(a[k], b[k]), k


def test_a_truncated_npy_is_a_clear_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 4)))
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:200])
    (tmp_path / "c.yaml").write_text(CONFIG.format(train="{x: x.npy, y: y.npy}"))
    run = nettrain("fit", "c.yaml", "--out", "run", cwd=tmp_path)
    assert run.returncode == 2
    assert "x.npy: not an .npy array of numbers" in run.stderr

"""Reading tables: time and peak memory of nettrain's reader against pandas and np.loadtxt.

    python benchmarks/csv_read.py [--rows 1000000] [--folder FOLDER] [--skip-loadtxt]

1. A mixed CSV of ``--rows`` rows x 20 columns (12 numbers, 7 categories of 3 to 12 values, a
   0/1 label; about 5% of the fields of 6 columns empty or NA) is read and encoded by
   ``nettrain.data.load_file`` (pyarrow, in blocks), next to ``pandas.read_csv`` (reading only,
   no encoding) and, on the 12 number columns written alone without missing fields, next to
   ``np.loadtxt`` (the reader nettrain used before, which took numbers only). Targets: under 5 s,
   and a peak memory under 3x the final float32 feature matrix.
2. MNIST's 60,000 training images written as a CSV (a header, the label first) from datasets/,
   and one epoch of a 784-256-128-10 MLP fitted on it with ``nettrain fit``: the whole command's
   time and peak memory (targets: under 3 s, under 300 MB), next to the same fit on the
   built-in MNIST (IDX files; it also scores the 10,000 test images).

Each measurement runs in a fresh process; its peak memory is the peak resident set of that
process less its resident set after the imports. FOLDER (default benchmarks/results/csv-read,
not kept in the repository) receives the files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import json, resource, sys, time
import numpy as np
{imports}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
base = rss()
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": seconds, "peak_mb": (peak - base) / 2**20, "info": info}}))
"""

CASES = {
    "nettrain": (
        "from nettrain import data",
        "ds = data.load_file(sys.argv[1])\n"
        "info = {'shape': list(ds.x.shape), 'dtype': str(ds.x.dtype), 'mb': ds.x.nbytes / 2**20}",
    ),
    "pandas": (
        "import pandas as pd",
        "df = pd.read_csv(sys.argv[1])\ninfo = {'mb': df.memory_usage(deep=True).sum() / 2**20}",
    ),
    "loadtxt": (
        "",
        "x = np.loadtxt(sys.argv[1], delimiter=',', skiprows=1, ndmin=2)\n"
        "info = {'shape': list(x.shape)}",
    ),
}


def measure(case: str, path: Path) -> dict:
    imports, body = CASES[case]
    code = MEASURE.format(imports=imports, body=body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=env, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_mixed(path: Path, rows: int, seed: int = 0, numbers_only: bool = False) -> None:
    """The mixed table (module docstring), written with pyarrow's CSV writer."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    cols = {}
    for j in range(12):
        v = np.round(rng.standard_normal(rows) * (j + 1) + j, 3)
        mask = None if numbers_only or j >= 3 else rng.random(rows) < 0.05
        cols[f"n{j}"] = pa.array(v, mask=mask)
    if not numbers_only:
        for j in range(7):
            values = np.array([f"c{j}_{k}" for k in range(3 + j + (j > 4) * 2)])
            mask = rng.random(rows) < 0.05 if j < 3 else None
            cols[f"cat{j}"] = pa.array(values[rng.integers(0, len(values), rows)], mask=mask)
        cols["label"] = pa.array(rng.integers(0, 2, rows))
    pacsv.write_csv(pa.table(cols), path)


def write_mnist_csv(path: Path) -> None:
    from nettrain.data import mnist

    ds = mnist("train")
    x = ds.x.reshape(len(ds.x), -1)
    table = np.concatenate([ds.y[:, None].astype(np.uint8), x], axis=1)
    header = "label," + ",".join(f"p{i}" for i in range(x.shape[1]))
    with open(path, "w") as f:
        f.write(header + "\n")
        np.savetxt(f, table, fmt="%d", delimiter=",")


MNIST_CONFIG = """\
seed: 0
data: {{{data}, preprocess: {{name: scale, factor: 0.00392156862745098}}}}
model:
  layers:
    - {{type: dense, units: 256, activation: tanh}}
    - {{type: dense, units: 128, activation: tanh}}
    - {{type: dense, units: 10}}
    - {{type: softmax}}
  loss: multinomial_cross_entropy
train: {{epochs: 1, batch_size: 64, optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}}}
"""


# runs a command; prints its wall time and peak resident set (of it alone)
TIMED = """import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def fit_mnist(folder: Path, train: str) -> dict:
    """``nettrain fit`` of one epoch on ``train`` (the MNIST CSV, or the built-in set): wall
    time and peak memory of the whole command."""
    config = folder / f"mnist-{'csv' if train.endswith('.csv') else 'builtin'}.yaml"
    data = f"train: {train}" if train.endswith(".csv") else "dataset: mnist"
    config.write_text(MNIST_CONFIG.format(data=data))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "nettrain", "fit", str(config), "--out", str(folder / "run"),
           "--overwrite", "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, env=env)  # once: Numba's cache compiled, the file cached
    out = subprocess.run([sys.executable, "-c", TIMED, *cmd], check=True, env=env,
                         capture_output=True, text=True)  # fmt: skip
    seconds, peak = out.stdout.split()
    return {"seconds": float(seconds), "peak_mb": int(peak) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--folder", default=str(ROOT / "benchmarks" / "results" / "csv-read"))
    parser.add_argument("--skip-loadtxt", action="store_true", help="np.loadtxt takes minutes")
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    mixed, numbers = folder / f"mixed-{args.rows}.csv", folder / f"numbers-{args.rows}.csv"
    if not mixed.exists():
        write_mixed(mixed, args.rows)
    if not numbers.exists():
        write_mixed(numbers, args.rows, numbers_only=True)
    results = {}
    for case, path in (("nettrain", mixed), ("pandas", mixed), ("nettrain", numbers),
                       ("loadtxt", numbers)):  # fmt: skip
        if case == "loadtxt" and args.skip_loadtxt:
            continue
        r = measure(case, path)
        results[f"{case} {path.stem}"] = r
        print(f"{case:<9} {path.name:<22} {r['seconds']:7.2f} s  peak {r['peak_mb']:7.0f} MB  "
              f"{r['info']}", flush=True)  # fmt: skip
    csv = folder / "mnist-train.csv"
    if not csv.exists():
        write_mnist_csv(csv)
    for what, train in (("MNIST as CSV", str(csv)), ("built-in MNIST", "mnist")):
        r = fit_mnist(folder, train)
        results[f"fit {what}"] = r
        print(f"fit one epoch on {what}: {r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB "
              "(the whole command)")  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

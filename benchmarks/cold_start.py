"""The first run of each shipped config: the time from command start to its first trained batch
with an empty Numba cache (everything compiled), as docs/speed.md's "The first run" table.

    python benchmarks/cold_start.py [CONFIG ...] [--threads 2]

Each config runs ``benchmarks/first_batch.py fit CONFIG`` with ``FIRST_BATCH_EXIT=1`` (it stops
at the first trained batch) and ``NUMBA_CACHE_DIR`` pointed at a new empty folder; the figure
includes the interpreter's start, the imports and reading the data. A config refused before
training (by design: configs/seed-tanh-cross-entropy.yaml) is shown as refused. Compilation is
single-threaded and CPU-bound: measure on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cold_start(config: Path, threads: int) -> float | None:
    """Seconds to the first trained batch of ``config`` with an empty cache; None if refused."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FIRST_BATCH_EXIT": "1", "NETTRAIN_THREADS": str(threads),
               "NUMBA_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(ROOT)}  # fmt: skip
        args = [sys.executable, str(ROOT / "benchmarks/first_batch.py"), "fit", str(config),
                "--quiet", "--out", str(Path(tmp) / "run")]  # fmt: skip
        launched = time.time()
        out = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp)
        last = (out.stdout.split() or ["none"])[-1]
        return None if last == "none" else float(last) - launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configs = args.configs or sorted((ROOT / "configs").glob("*.yaml"))
    print("| config | first trained batch, cold cache |\n|---|---|")
    for config in configs:
        seconds = cold_start(config.resolve(), args.threads)  # each runs in a temporary folder
        shown = "refused before training" if seconds is None else f"{seconds:.1f} s"
        print(f"| `{config.name}` | {shown} |", flush=True)


if __name__ == "__main__":
    main()

"""nettrain on a busy machine: one training alone, several at once, and one beside a busy process.

    python benchmarks/fair.py [--configs configs/mnist-mlp.yaml configs/mnist-lenet.yaml]
                              [--epochs 3] [--copies 2] [--rounds 2]

Each case times whole `nettrain fit CONFIG --set train.epochs=E --quiet` processes (start-up and
data loading included, warm Numba cache), with the thread count left at its default (every core;
nettrain lowers it while other processes hold cores). Cases, per config and round:
- `alone`: one run on an otherwise idle machine;
- `N at once`: N copies started together; the figure is each copy's time over the alone time
  (two runs sharing 2 cores fairly each take at most about twice as long as one alone);
- `beside a busy process`: one run while a single-threaded busy loop holds one core.
Prints a table and writes the JSON to benchmarks/results/fair.json (not kept in the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass\n"


def fit(config: str, epochs: int, out: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "nettrain", "fit", config, "--set", f"train.epochs={epochs}"]
    args += ["--out", str(out), "--overwrite", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "NETTRAIN_THREADS"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def timed(procs: list[subprocess.Popen], started: float) -> list[float]:
    times = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"nettrain fit failed:\n{err[-2000:]}")
        times.append(time.perf_counter() - started)
    return times


def run_case(config, epochs, copies, busy, folder) -> list[float]:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        if spinner:
            time.sleep(0.5)
        started = time.perf_counter()
        procs = [fit(config, epochs, folder / f"run{i}") for i in range(copies)]
        return timed(procs, started)
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", nargs="+", default=["configs/mnist-mlp.yaml", "configs/mnist-lenet.yaml"]
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/fair.json"))
    args = parser.parse_args()
    results = {"cpu_count": os.cpu_count(), "epochs": args.epochs, "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for config in args.configs:
            run_case(config, 1, 1, False, folder)  # compile once: every case below is warm
            cases = {"alone": [], f"{args.copies} at once": [], "beside a busy process": []}
            for _ in range(args.rounds):
                cases["alone"] += run_case(config, args.epochs, 1, False, folder)
                cases[f"{args.copies} at once"] += run_case(
                    config, args.epochs, args.copies, False, folder
                )
                cases["beside a busy process"] += run_case(config, args.epochs, 1, True, folder)
            results["configs"][config] = cases
            alone = statistics.median(cases["alone"])
            print(f"{config}, {args.epochs} epochs (whole process, seconds; ratio to alone)")
            for name, times in cases.items():
                shown = ", ".join(f"{t:.1f} ({t / alone:.2f}x)" for t in times)
                print(f"  {name:24s} {shown}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Data-parallel speed: training steps of a config timed in one process or under mpirun.

    python benchmarks/mpi_speed.py CONFIG [--steps 200] [--warmup 20] [--set KEY=VALUE ...]
    mpirun -n 2 python benchmarks/mpi_speed.py CONFIG ...

Runs the training loop's own step (nettrain.training.loop.step: forward and backward of this rank's
share, then the one allreduce of the step) and the optimizer's update, ``--steps`` times after
``--warmup`` steps, with no validation or checkpoint in between. Rank 0 prints one JSON line:
ranks, threads per rank, global batch, seconds per step, samples/s, and the share of the step
spent in the allreduce (rank 0's wait included: the time the slowest rank takes shows up there).
``--cifar N`` trains the CIFAR-shaped net of docs/scaling.md on N random 3x32x32 samples instead
of CONFIG's data (CONFIG then only gives the optimizer).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CIFAR = """
seed: 0
dtype: float32
data: {{train: {path}}}
model:
  input: [3, 32, 32]
  layers:
    - {{type: conv2d, filters: 32, kernel: 3, padding: same, activation: relu}}
    - {{type: conv2d, filters: 32, kernel: 3, padding: same, activation: relu}}
    - {{type: maxpool2d, size: 2}}
    - {{type: conv2d, filters: 64, kernel: 3, padding: same, activation: relu}}
    - {{type: conv2d, filters: 64, kernel: 3, padding: same, activation: relu}}
    - {{type: maxpool2d, size: 2}}
    - {{type: dense, units: 256, activation: relu}}
    - {{type: dense, units: 10}}
    - softmax
  loss: multinomial_cross_entropy
train: {{epochs: 1, batch_size: 64, optimizer: {{name: sgd, lr: 0.01, momentum: 0.9}}}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--cifar", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()

    from nettrain.config import load_config
    from nettrain.runtime import threads

    threads.configure()
    config = args.config
    if args.cifar:
        folder = Path(tempfile.mkdtemp())
        rng = np.random.default_rng(0)
        x = rng.random((args.cifar, 3, 32, 32), dtype=np.float32)
        np.savez(folder / "cifar.npz", x=x, y=rng.integers(0, 10, args.cifar))
        config = folder / "cifar.yaml"
        config.write_text(CIFAR.format(path=folder / "cifar.npz"))
    cfg, src = load_config(str(config), tuple(args.sets))
    result = measure(cfg, src, args.steps, args.warmup)
    if result is not None:  # rank 0
        print(json.dumps(result), flush=True)


def measure(cfg, src, steps: int, warmup: int) -> dict | None:
    from nettrain.core.streams import epoch_order
    from nettrain.runtime import threads
    from nettrain.training.loop import step
    from nettrain.training.prepare import prepare

    run = prepare(cfg, src)
    world, bs = run.world, cfg["train"]["batch_size"]
    n = len(run.train)
    order = np.concatenate([epoch_order(cfg["seed"], e, n, True) for e in range(8)])
    n_batches = math.ceil(n / bs)
    params, grads = run.net.params(), run.net.grads()
    started = None
    for s in range(warmup + steps):
        if s == warmup:
            world.barrier()
            started, reduced = time.perf_counter(), getattr(world, "allreduce_seconds", 0.0)
        idx = order[(s * bs) % (len(order) - bs) :][:bs]
        step(run, idx, n_batches, False)
        run.optimizer.step(params, grads)
        run.state.step += 1
    seconds = time.perf_counter() - started
    reduce = getattr(world, "allreduce_seconds", 0.0) - reduced
    if not world.root:
        return None
    return {
        "ranks": world.size,
        "threads": threads.max_threads(),
        "batch": bs,
        "params": run.net.param_count(),
        "seconds_per_step": seconds / steps,
        "samples_per_s": steps * bs / seconds,
        "allreduce_share": reduce / seconds,
    }


if __name__ == "__main__":
    main()

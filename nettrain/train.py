"""The training loop: batches, forward, loss, backward, step; then logging and checkpoints.

Randomness is drawn from streams derived from the seed, so that any point of a run can be
reproduced without replaying it: the initial weights from ``default_rng([seed, 0])`` and the
shuffle order of epoch e from ``default_rng([seed, 1, e])``. A resumed run therefore sees the
same batches, in the same order, as one never interrupted.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from nettrain import checkpoint
from nettrain.assemble import assemble, score
from nettrain.errors import JobFailed, UserError
from nettrain.optim import make_optimizer


class Interrupted(Exception):
    """Training stopped by Ctrl-C / SIGTERM after writing a checkpoint (exit code 130)."""

    exit_code = 130


def init_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0])


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The sample order of ``epoch`` (0-based): a seeded permutation, or 0..n-1."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, 1, epoch]).permutation(n)


class StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks after each batch; a second signal aborts."""

    def __init__(self):
        self.raised = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True
        print("\nstopping after this batch (press Ctrl-C again to abort without saving)",
              file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def fit(cfg: dict, src, run_dir: Path, *, weights=None, resume=None, progress=True, out=None):
    """Train as ``cfg`` says, writing the run folder; returns the list of metrics rows.

    ``weights``: (arrays, where) to initialise from; ``resume``: (arrays, meta, where) to continue.
    """
    from tqdm import tqdm

    out = out or sys.stdout
    tc = cfg["train"]
    net, train, test = assemble(cfg, src)
    classes = train.has_classes
    params, grads = net.params(), net.grads()
    optimizer = make_optimizer(tc["optimizer"], params)

    state = {"epoch": 0, "batch": 0, "step": 0, "metrics": [], "partial": None, "best": None}
    if resume is not None:
        arrays, meta, where = resume
        net.load_params(arrays, where)
        optimizer.load_state_arrays(arrays, where)
        state.update({k: meta[k] for k in state if k in meta})
    elif weights is not None:
        net.load_params(*weights)
    else:
        net.init_params(init_rng(cfg["seed"]))

    columns = metric_columns(classes, test is not None)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    write_metrics(run_dir / "metrics.csv", columns, state["metrics"])
    monitor, mode = ("test_accuracy", "max") if classes else ("test_loss", "min")

    def meta(**extra):
        return {"config": cfg, "input_shape": list(net.input_shape), "n_outputs": net.n_outputs,
                "input_scale": train.scale, "targets": "classes" if classes else "values",
                "rng": {"seed": cfg["seed"], "streams": "init [seed, 0]; shuffle [seed, 1, epoch]"},
                **state, **extra}

    def save(name):
        checkpoint.save(run_dir / name, {**params, **optimizer.state_arrays()}, meta())

    n, bs = len(train), tc["batch_size"]
    n_batches = math.ceil(n / bs)
    # Overflow is caught by the finiteness check below; numpy's warnings would only add noise.
    with StopFlag() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(state["epoch"], tc["epochs"]):
            order = epoch_order(cfg["seed"], epoch, n, tc["shuffle"])
            partial = state["partial"] or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            started = time.perf_counter() - partial["seconds"]
            bar = tqdm(total=n_batches, initial=state["batch"], desc=f"epoch {epoch + 1}",
                       file=sys.stderr, leave=False, disable=not progress, dynamic_ncols=True)
            for b in range(state["batch"], n_batches):
                idx = order[b * bs:(b + 1) * bs]
                x = train.inputs(idx, net.dtype)
                t = train.targets(idx, net.n_outputs, net.dtype)
                loss, output, _ = net.loss_and_backward(x, t)
                if not (math.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())):
                    bar.close()
                    raise diverged(epoch, b, loss, run_dir)
                optimizer.step(params, grads)
                state["step"] += 1
                partial["loss"] += loss * len(idx)
                partial["seen"] += len(idx)
                if classes:
                    partial["correct"] += int(np.sum(output.argmax(axis=1) == train.y[idx]))
                bar.update(1)
                if b % 20 == 0:
                    bar.set_postfix(loss=f"{partial['loss'] / partial['seen']:.4f}", refresh=False)
                if stop.raised:
                    bar.close()
                    partial["seconds"] = time.perf_counter() - started
                    state.update(epoch=epoch, batch=b + 1, partial=partial)
                    save("last.npz")
                    raise Interrupted(run_dir / "last.npz")
            bar.close()

            row = {"epoch": epoch + 1, "train_loss": partial["loss"] / partial["seen"]}
            if classes:
                row["train_accuracy"] = partial["correct"] / partial["seen"]
            if test is not None:
                row["test_loss"], row["test_accuracy"], _ = score(net, test)
            row["lr"] = optimizer.lr
            row["seconds"] = time.perf_counter() - started
            state["metrics"].append({k: row[k] for k in columns})
            state.update(epoch=epoch + 1, batch=0, partial=None)
            print(format_row(row, tc["epochs"]), file=out, flush=True)

            write_metrics(run_dir / "metrics.csv", columns, state["metrics"])
            best, value = state["best"], row.get(monitor)
            improved = test is not None and (
                best is None or (value > best if mode == "max" else value < best)
            )
            if improved:
                state["best"] = value
            save("last.npz")
            if improved:
                save("best.npz")
    return state["metrics"]


def metric_columns(classes: bool, has_test: bool) -> list[str]:
    columns = ["epoch", "train_loss"] + (["train_accuracy"] if classes else [])
    if has_test:
        columns += ["test_loss"] + (["test_accuracy"] if classes else [])
    return columns + ["lr", "seconds"]


def write_metrics(path: Path, columns, rows) -> None:
    lines = [",".join(columns)]
    lines += [",".join(_csv_value(row[c]) for c in columns) for row in rows]
    checkpoint.write_text(path, "\n".join(lines) + "\n")


def _csv_value(v) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def format_row(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    if "train_accuracy" in row:
        parts.append(f"train_acc {100 * row['train_accuracy']:.2f}%")
    if "test_loss" in row:
        parts.append(f"test_loss {row['test_loss']:.4f}")
    if row.get("test_accuracy") is not None:
        parts.append(f"test_acc {100 * row['test_accuracy']:.2f}%")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def diverged(epoch: int, batch: int, loss: float, run_dir: Path) -> JobFailed:
    what = "loss" if not math.isfinite(loss) else "gradient"
    return JobFailed(
        f"epoch {epoch + 1}, batch {batch + 1}",
        f"training diverged: the {what} is not finite (loss = {loss}); no update was applied",
        f"likely causes: a learning rate too high (try 10x smaller) or unscaled inputs; "
        f"the last good checkpoint is {run_dir / 'last.npz'}",
    )


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Fail before training when the folder is another run's or cannot be written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(str(run_dir), "the output path exists and is not a folder")
    taken = [n for n in ("config.yaml", "metrics.csv", "last.npz") if (run_dir / n).exists()]
    if taken and not overwrite:
        raise UserError(str(run_dir), "the folder already holds a run",
                        "continue it with --resume RUN/last.npz, choose another --out, "
                        "or pass --overwrite")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(str(run_dir), f"cannot write the run folder: {exc.strerror}") from None

"""The training loop: batches, forward, loss, backward, step; then logging and checkpoints.

Randomness is drawn from streams derived from the seed, so that any point of a run can be
reproduced without replaying it: initial weights from ``default_rng([seed, 0])``, the shuffle
order of epoch e from ``default_rng([seed, 1, e])``, the dropout masks of step s from
``default_rng([seed, 2, s, layer])``, the validation hold-out from ``default_rng([seed, 5])``,
the augmented views of step s (data/augment.py) from ``default_rng([seed, 6, s])``.
The learning rate is a pure function of the step. A resumed run therefore sees the same
batches, masks and learning rates as one never interrupted, and ends bit-identical to it.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from nettrain import checkpoint, environment
from nettrain.assemble import assemble, score
from nettrain.errors import JobFailed, UserError
from nettrain.optim import Optimizer, make_optimizer
from nettrain.schedule import lr_at


class Interrupted(Exception):
    """Training stopped by Ctrl-C / SIGTERM after writing a checkpoint (exit code 130)."""

    exit_code = 130


def init_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0])


def augment_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of step ``step``'s augmented views (data.augment)."""
    return np.random.default_rng([seed, 6, step])


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
        print(
            "\nstopping after this batch (press Ctrl-C again to abort without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@dataclass
class Watch:
    """A monitored figure ('validation_loss', ...), better when lower ('min') or higher ('max')."""

    metric: str
    mode: str
    min_delta: float = 0.0

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return (
            value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
        )


@dataclass
class Run:
    """Everything a training needs, prepared and checked before any file is written."""

    cfg: dict
    net: object
    train: object
    validation: object
    test: object
    optimizer: Optimizer
    best: Watch | None
    stopping: Watch | None
    state: dict = field(default_factory=dict)
    preprocess: dict = field(default_factory=dict)  # 'preprocess.*' statistics, checkpointed
    augment: object = None  # data.augment.Augment of the training batches, or None


def prepare(cfg: dict, src=None, *, weights=None, resume=None) -> Run:
    """Build the net, read and check the data, set up optimizer and monitors, load weights.

    ``weights``: (arrays, where) to initialise from; ``resume``: (arrays, meta, where).
    """
    from nettrain import data

    net, train, test = assemble(cfg, src)
    train, validation = split_validation(train, cfg, net)
    stats, (train, validation, test), augment = data.for_training(
        cfg["data"], net.input_shape, (train, validation, test), src
    )
    tc = cfg["train"]
    optimizer = make_optimizer(tc["optimizer"], net.params())
    splits = {"train": True, "validation": validation is not None, "test": test is not None}
    ck, es = tc["checkpoint"], tc["early_stopping"]
    at = ("train", "checkpoint", "monitor")
    best = watch(ck["monitor"], ck["mode"], 0.0, splits, train.has_classes, src, at)
    stopping = None
    if es is not None:
        at = ("train", "early_stopping", "monitor")
        monitor = es["monitor"]
        if monitor == "auto" and not (splits["validation"] or splits["test"]):
            monitor = "train_loss"  # with nothing held out, the training loss is what there is
        stopping = watch(monitor, es["mode"], es["min_delta"], splits, train.has_classes, src, at)
    state = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "metrics": [],
        "partial": None,
        "best": None,
        "stopping": {"best": None, "wait": 0},
    }
    if resume is not None:
        arrays, meta, where = resume
        net.load_params(arrays, where)
        optimizer.load_state_arrays(arrays, where)
        state.update({k: meta[k] for k in state if k in meta})
    elif weights is not None:
        net.load_params(*weights)
    else:
        net.init_params(init_rng(cfg["seed"]))
    run = Run(cfg, net, train, validation, test, optimizer, best, stopping, state)
    run.preprocess, run.augment = stats, augment
    return run


def split_validation(train, cfg: dict, net):
    """(train, validation): data.validation as a seeded hold-out of the training set or a file."""
    from nettrain import data

    spec = cfg["data"]["validation"]
    if spec is None:
        return train, None
    if isinstance(spec, (str, dict)):
        held = data.load_file(spec, cfg["data"], train.classes)
        return train, data.fit_to_net(held, net.input_shape, net.n_outputs)
    n = len(train)
    count = round(spec * n) if isinstance(spec, float) else spec
    if not 1 <= count < n:
        raise UserError(
            "data.validation",
            f"holding out {count} of {n} training samples leaves no training or no validation set",
        )
    order = np.random.default_rng([cfg["seed"], 5]).permutation(n)
    return train.subset(np.sort(order[count:])), train.subset(np.sort(order[:count]))


def watch(metric, mode, min_delta, splits, classes, src, path) -> Watch | None:
    """The Watch a monitor/mode pair resolves to; None for 'auto' with nothing to score."""
    where = src.where(path) if src else ".".join(path)
    if metric == "auto":
        split = next((s for s in ("validation", "test") if splits[s]), None)
        if split is None:
            return None
        metric = f"{split}_accuracy" if classes else f"{split}_loss"
    split, _, figure = metric.partition("_")
    if not splits[split]:
        raise UserError(
            where,
            f"monitor '{metric}' needs a {split} set",
            f"give data.{split}, or monitor another figure",
        )
    if figure == "accuracy" and not classes:
        raise UserError(
            where,
            f"monitor '{metric}' needs class labels; the targets are values",
            f"monitor {split}_loss instead",
        )
    if mode == "auto":
        mode = "max" if figure == "accuracy" else "min"
    return Watch(metric, mode, min_delta)


def fit(cfg: dict, src, run_dir: Path, *, weights=None, resume=None, progress=True, out=None):
    """prepare() then train(): the library's one-call training."""
    return train(prepare(cfg, src, weights=weights, resume=resume), run_dir, progress, out)


def train(run: Run, run_dir: Path, progress: bool = True, out=None) -> list[dict]:
    """Train ``run`` to the end (or early stop), writing the run folder; the metrics rows."""
    from tqdm import tqdm

    out = out or sys.stdout
    cfg, net, data, optimizer, state = run.cfg, run.net, run.train, run.optimizer, run.state
    tc, seed = cfg["train"], cfg["seed"]
    params, grads = net.params(), net.grads()
    columns = metric_columns(data.has_classes, run.validation is not None, run.test is not None)
    run_dir = Path(run_dir)
    start_run_folder(run, run_dir, columns)
    env = environment.describe()

    def save(name):
        save_checkpoint(run, run_dir / name, env)

    n, bs = len(data), tc["batch_size"]
    n_batches = math.ceil(n / bs)
    ck = tc["checkpoint"]
    last_save = time.monotonic()
    # Overflow is caught by the finiteness check below; numpy's warnings would only add noise.
    with StopFlag() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(state["epoch"], tc["epochs"]):
            order = epoch_order(seed, epoch, n, tc["shuffle"])
            partial = state["partial"] or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            started = time.perf_counter() - partial["seconds"]
            bar = tqdm(total=n_batches, initial=state["batch"], desc=f"epoch {epoch + 1}",
                       file=sys.stderr, leave=False, disable=not progress)  # fmt: skip
            for b in range(state["batch"], n_batches):
                idx = order[b * bs : (b + 1) * bs]
                views = augment_rng(seed, state["step"]) if run.augment else None
                x = data.inputs(idx, net.dtype, run.augment, views)
                t = data.targets(idx, net.n_outputs, net.dtype)
                optimizer.lr = lr_at(
                    tc["schedule"], tc["optimizer"]["lr"], state["step"], n_batches, tc["epochs"]
                )
                net.seed_step(seed, state["step"])
                loss, output, _ = net.loss_and_backward(x, t, input_grad=False)
                if not (math.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())):
                    bar.close()
                    raise diverged(epoch, b, loss, run_dir)
                optimizer.step(params, grads)
                state["step"] += 1
                partial["loss"] += loss * len(idx)
                partial["seen"] += len(idx)
                if data.has_classes:
                    partial["correct"] += int(np.sum(output.argmax(axis=1) == data.y[idx]))
                bar.update(1)
                if b % 20 == 0:
                    bar.set_postfix(loss=f"{partial['loss'] / partial['seen']:.4f}", refresh=False)
                due = checkpoint_due(ck, state["step"], last_save)
                if (stop.raised or due) and b + 1 < n_batches:  # mid-epoch: position saved too
                    partial["seconds"] = time.perf_counter() - started
                    state.update(epoch=epoch, batch=b + 1, partial=partial)
                    save("last.npz")
                    last_save = time.monotonic()
                    if stop.raised:
                        bar.close()
                        raise Interrupted(run_dir / "last.npz")
            bar.close()

            row = epoch_row(run, epoch, partial, max(bs, 64))
            row["seconds"] = time.perf_counter() - started
            state["metrics"].append({k: row[k] for k in columns})
            state.update(epoch=epoch + 1, batch=0, partial=None)
            print(format_row(row, tc["epochs"]), file=out, flush=True)
            improved, stop_early = update_monitors(run, row)

            write_metrics(run_dir / "metrics.csv", columns, state["metrics"])
            save("last.npz")
            last_save = time.monotonic()
            if improved:
                save("best.npz")
            if ck["keep"]:
                save(f"epoch-{epoch + 1:03d}.npz")
            if stop_early:
                waited = state["stopping"]
                print(f"early stopping: {run.stopping.metric} has not improved for "
                      f"{waited['wait']} epochs (best {waited['best']:.6g})", file=out)  # fmt: skip
                break
            if stop.raised:
                raise Interrupted(run_dir / "last.npz")
    return state["metrics"]


def start_run_folder(run: Run, run_dir: Path, columns) -> None:
    """config.yaml, environment.yaml and the metrics rows so far (none, or the resumed ones)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):  # half-written files of a run that was killed
        stale.unlink(missing_ok=True)
    checkpoint.write_text(run_dir / "config.yaml", yaml.safe_dump(run.cfg, sort_keys=False))
    env = yaml.safe_dump(environment.describe(), sort_keys=False)
    checkpoint.write_text(run_dir / "environment.yaml", env)
    write_metrics(run_dir / "metrics.csv", columns, run.state["metrics"])


def save_checkpoint(run: Run, path: Path, env: dict) -> None:
    """Parameters, optimizer state, preprocessing statistics and everything resume needs."""
    net, data = run.net, run.train
    meta = {
        "config": run.cfg,
        "input_shape": list(net.input_shape),
        "n_outputs": net.n_outputs,
        "input_scale": data.scale,
        "targets": "classes" if data.has_classes else "values",
        "classes": data.classes,
        "rng": {
            "seed": run.cfg["seed"],
            "streams": "init [seed,0]; shuffle [seed,1,epoch]; "
            "dropout [seed,2,step,layer]; validation [seed,5]; augment [seed,6,step]",
        },
        "environment": env,
        **run.state,
    }
    arrays = {**net.arrays(), **run.optimizer.state_arrays(), **run.preprocess}
    checkpoint.save(path, arrays, meta)


def checkpoint_due(ck: dict, step: int, last_save: float) -> bool:
    """train.checkpoint.every_steps / every_minutes: is a mid-epoch last.npz due?"""
    by_steps = ck["every_steps"] and step % ck["every_steps"] == 0
    by_time = ck["every_minutes"] and time.monotonic() - last_save >= 60 * ck["every_minutes"]
    return bool(by_steps or by_time)


def epoch_row(run: Run, epoch: int, partial: dict, batch_size: int) -> dict:
    """The figures of a finished epoch (all but its seconds): train from the running sums,
    validation and test scored now."""
    row = {"epoch": epoch + 1, "train_loss": partial["loss"] / partial["seen"]}
    if run.train.has_classes:
        row["train_accuracy"] = partial["correct"] / partial["seen"]
    for split, ds in (("validation", run.validation), ("test", run.test)):
        if ds is not None:
            row[f"{split}_loss"], row[f"{split}_accuracy"], _ = score(run.net, ds, batch_size)
    row["lr"] = run.optimizer.lr
    return row


def update_monitors(run: Run, row: dict) -> tuple[bool, bool]:
    """(best.npz improved, early stopping due) after an epoch's row; updates run.state."""
    state = run.state
    improved = run.best is not None and run.best.improves(row[run.best.metric], state["best"])
    if improved:
        state["best"] = row[run.best.metric]
    if run.stopping is None:
        return improved, False
    waited, value = state["stopping"], row[run.stopping.metric]
    if run.stopping.improves(value, waited["best"]):
        waited.update(best=value, wait=0)
    else:
        waited["wait"] += 1
    return improved, waited["wait"] >= run.cfg["train"]["early_stopping"]["patience"]


def metric_columns(classes: bool, has_validation: bool, has_test: bool) -> list[str]:
    columns = ["epoch"]
    for split, present in (("train", True), ("validation", has_validation), ("test", has_test)):
        if present:
            columns += [f"{split}_loss"] + ([f"{split}_accuracy"] if classes else [])
    return columns + ["lr", "seconds"]


def write_metrics(path: Path, columns, rows) -> None:
    lines = [",".join(columns)]
    lines += [",".join(_csv_value(row[c]) for c in columns) for row in rows]
    checkpoint.write_text(path, "\n".join(lines) + "\n")


def _csv_value(v) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def format_row(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for split, short in (("train", "train"), ("validation", "val"), ("test", "test")):
        if f"{split}_loss" in row:
            parts.append(f"{short}_loss {row[f'{split}_loss']:.4f}")
        if row.get(f"{split}_accuracy") is not None:
            parts.append(f"{short}_acc {100 * row[f'{split}_accuracy']:.2f}%")
    parts += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f}s"]
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
        raise UserError(
            str(run_dir),
            "the folder already holds a run",
            "continue it with --resume RUN/last.npz, choose another --out, or pass --overwrite",
        )
    created = not run_dir.exists()
    probe = run_dir / ".write-test"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if created:  # a refused run leaves no folder behind
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
                run_dir.rmdir()
        raise UserError(str(run_dir), f"cannot write the run folder: {exc.strerror}") from None

"""The training loop: batches, forward, loss, backward, step; then logging and checkpoints.

Every random draw comes from a stream derived from the seed (nettrain.core.streams) and the learning
rate is a pure function of the step, so a resumed run sees the same batches, masks and learning
rates as one never interrupted, and ends bit-identical to it. Preparing a run is prepare.py's
job, the run folder run_folder.py's, the metrics rows history.py's, Ctrl-C interrupt.py's.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nettrain.core.errors import JobFailed
from nettrain.core.step import Step
from nettrain.core.streams import epoch_order
from nettrain.net import metrics
from nettrain.net.losses import smoothed
from nettrain.optim.clip import clip_grad_norm
from nettrain.optim.schedule import lr_at
from nettrain.runtime import compiling
from nettrain.training.history import format_row, metric_columns
from nettrain.training.interrupt import Interrupted, StopFlag
from nettrain.training.monitors import update_monitors
from nettrain.training.prepare import Run
from nettrain.training.run_folder import run_folder

__all__ = ["Interrupted", "Run", "train"]


def train(run: Run, run_dir: Path | None, progress: bool, out, on_epoch=None) -> list[dict]:
    """Train ``run`` to the end (or early stop), writing the run folder (none for None) and the
    epoch lines to the stream ``out``; the metrics rows. ``on_epoch(row)`` is called after every
    epoch with its figures; training stops there when it returns False. (nettrain.training.fit
    prepares the run and calls this.) With train.ema, the net trains on the optimizer's iterate
    and holds the weights' average once this returns or raises (nettrain.optim.average)."""
    average = run.average
    if average is not None:
        average.to_iterate(run.net)
    try:
        return epochs(run, run_dir, progress, out, on_epoch)
    finally:
        if average is not None:
            average.to_average(run.net)


def epochs(run: Run, run_dir: Path | None, progress: bool, out, on_epoch) -> list[dict]:
    """train's epochs, the net holding the weights that train."""
    cfg, data, state, tc, world = run.cfg, run.train, run.state, run.cfg["train"], run.world
    params, grads = run.net.params(), run.net.grads()
    columns = metric_columns(data.has_classes, run.validation is not None, run.test is not None)
    folder = run_folder(world.root, run_dir, run, columns)  # rank 0 writes, the others do not
    folder.start()
    n, bs = len(data), tc["batch_size"]
    n_batches = math.ceil(n / bs)
    # Overflow is caught by the finiteness check below; numpy's warnings would only add noise.
    with StopFlag() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(state.epoch, tc["epochs"]):
            order = epoch_order(cfg["seed"], epoch, n, tc["shuffle"])
            partial = state.new_epoch()
            started = time.perf_counter() - partial["seconds"]
            with progress_bar(epoch, n_batches, state.batch, progress) as bar:
                for b in range(state.batch, n_batches):
                    idx = order[b * bs : (b + 1) * bs]
                    loss, sums, stopping = step(run, idx, n_batches, stop.raised)
                    if not finite(loss, grads):  # on every rank alike: the sums are shared
                        raise diverged(epoch, b, loss, folder.last)
                    if tc["clip_grad_norm"]:
                        clip_grad_norm(grads, tc["clip_grad_norm"])
                    run.optimizer.step(params, grads)
                    state.step += 1
                    if run.average is not None:
                        run.average.update(run.net, state.step)
                    tally(partial, loss, len(idx), sums)
                    advance(bar, b, partial)
                    due = folder.checkpoint_due(state.step)
                    if (stopping or due) and b + 1 < n_batches:  # mid-epoch: position saved too
                        partial["seconds"] = time.perf_counter() - started
                        state.epoch, state.batch, state.partial = epoch, b + 1, partial
                        folder.save("last.npz")
                        if stopping:
                            raise Interrupted(folder.last)

            row = epoch_row(run, epoch, partial, max(bs, 64))
            row["seconds"] = time.perf_counter() - started
            state.metrics.append({k: row[k] for k in columns})
            state.epoch, state.batch, state.partial = epoch + 1, 0, None
            print(format_row(row, tc["epochs"]), file=out, flush=True)
            improved, stop_early = update_monitors(run, row)
            folder.end_epoch(epoch, improved)
            if on_epoch is not None and on_epoch(dict(row)) is False:
                break
            if stop_early:
                best = state.stopping_best
                print(f"early stopping: {run.stopping.metric} has not improved for "
                      f"{state.wait} epochs (best {best:.6g})", file=out)  # fmt: skip
                break
            if world.any(stop.raised):
                raise Interrupted(folder.last)
    return state.metrics


def step(run: Run, idx: np.ndarray, n_batches: int, stop: bool) -> tuple[float, dict, bool]:
    """Forward and backward of this process's share of the batch ``idx``, then the sums over
    every process (one allreduce under MPI): (batch loss, the batch's metric sums, whether any
    process was asked to stop), with the batch's mean gradient in the net's grads."""
    world, y = run.world, run.train.y
    rows = world.block(len(idx))
    part = (rows.start, rows.stop, len(idx))  # this process's rows of the batch
    at = Step(run.cfg["seed"], run.state.step, part if world.size > 1 else None, world.layer_sum)
    sums = {"correct": 0} if y.ndim == 1 else {k: [0.0] * y[0].size for k in ("abs", "sq")}
    if rows.stop > rows.start:
        loss, output = forward_backward(run, idx, n_batches, at, part)
        metrics.accumulate(sums, y[idx[rows]], output)
    else:  # a short last batch leaves some ranks nothing to compute
        loss = 0.0
        run.net.empty_pass(at)
    return world.reduce_step(run.net.grads(), loss, sums, stop)


def forward_backward(run: Run, idx, n_batches: int, at: Step, part) -> tuple[float, np.ndarray]:
    """(loss, outputs) of this process's rows ``part`` (lo, hi, n) of the batch ``idx`` at step
    ``at``, with the gradients of the loss, divided by the whole batch's size, in the net's
    grads and the optimizer's learning rate set for the step."""
    net, data, tc = run.net, run.train, run.cfg["train"]
    mine = idx[part[0] : part[1]]
    views = at.augment_rng() if run.augment else None
    x = data.inputs(mine, net.dtype, run.augment, views, part)
    t = data.targets(mine, net.n_outputs, net.dtype)
    if tc["label_smoothing"]:
        t = smoothed(t, tc["label_smoothing"])
    lr = tc["optimizer"]["lr"] if run.state.plateau is None else run.state.plateau["lr"]
    run.optimizer.lr = lr_at(tc["schedule"], lr, at.number, n_batches, tc["epochs"])
    w = None if run.class_weights is None else run.class_weights[data.y[mine]]
    loss, output, _ = net.loss_and_backward(
        x, t, input_grad=False, total=len(idx), step=at, weights=w
    )
    compiling.settled()  # a first run: the training step's kernels are compiled now
    return loss, output


def tally(partial: dict, loss: float, n: int, sums: dict) -> None:
    """Add a batch of n samples to the epoch's running sums: loss x samples, samples, and the
    sums the task's figures need (correct predictions; or errors)."""
    partial["loss"] += loss * n
    partial["seen"] += n
    for key, add in sums.items():
        if key == "correct":
            partial[key] = partial.get(key, 0) + add
        else:
            partial[key] = (np.asarray(partial.get(key, 0.0)) + np.asarray(add)).tolist()


def finite(loss: float, grads: dict) -> bool:
    """Whether the batch loss and every gradient are finite (an update would spoil the weights)."""
    return math.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


def progress_bar(epoch: int, n_batches: int, done: int, shown: bool) -> tqdm:
    """The epoch's progress bar on stderr (disabled when not ``shown``); closed on leaving."""
    return tqdm(
        total=n_batches,
        initial=done,
        desc=f"epoch {epoch + 1}",
        file=sys.stderr,
        leave=False,
        disable=not shown,
    )


def advance(bar: tqdm, b: int, partial: dict) -> None:
    """One batch done; every 20 batches the epoch's mean loss so far beside the bar."""
    bar.update(1)
    if b % 20 == 0:
        bar.set_postfix(loss=f"{partial['loss'] / partial['seen']:.4f}", refresh=False)


def epoch_row(run: Run, epoch: int, partial: dict, batch_size: int) -> dict:
    """The figures of a finished epoch (all but its seconds): train from the running sums,
    validation and test scored now."""
    row = {"epoch": epoch + 1, "train_loss": partial["loss"] / partial["seen"]}
    train = run.train
    squares = None if train.has_classes else metrics.total_squares(train.y)
    figures = metrics.from_sums({**partial, "n": partial["seen"]}, squares)
    row.update({f"train_{k}": v for k, v in figures.items()})
    scored = contextlib.nullcontext() if run.average is None else run.average.scoring(run.net)
    with scored:  # with train.ema: the average
        for split, ds in (("validation", run.validation), ("test", run.test)):
            if ds is None:
                continue
            row[f"{split}_loss"], outputs = run.world.score(run.net, ds, batch_size)
            row.update({f"{split}_{k}": v for k, v in metrics.figures(ds.y, outputs).items()})
    row["lr"] = run.optimizer.lr
    return row


def diverged(epoch: int, batch: int, loss: float, last: Path | None) -> JobFailed:
    what = "loss" if not math.isfinite(loss) else "gradient"
    saved = f"; the last good checkpoint is {last}" if last else ""
    return JobFailed(
        f"epoch {epoch + 1}, batch {batch + 1}",
        f"training diverged: the {what} is not finite (loss = {loss}); no update was applied",
        f"likely causes: a learning rate too high (try 10x smaller) or unscaled inputs{saved}",
    )

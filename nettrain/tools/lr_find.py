"""`nettrain lr-find CONFIG`: the learning-rate range test (Smith, "Cyclical Learning Rates for
Training Neural Networks", 2017; fastai's ``lr_find``).

From the config's start (its seed's initial weights, its optimizer, its training split and
batches), one step per batch with the rate growing exponentially, step i of n at
``start * (end / start) ** (i / (n - 1))``. The loss is smoothed with an exponential moving
average, ``avg <- beta avg + (1 - beta) loss`` with the bias correction ``avg / (1 - beta ** (i +
1))``; the test stops once the smoothed loss exceeds ``DIVERGED`` times its minimum (or a loss is
not finite). The suggestion is the rate where the smoothed loss falls fastest against log(rate):
the most negative slope before the minimum. Nothing is written: the net and optimizer live in
memory only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nettrain import data
from nettrain.assemble import assemble, split_validation
from nettrain.core.errors import UserError
from nettrain.core.files import atomic_write
from nettrain.core.step import Step
from nettrain.core.streams import epoch_order, init_rng
from nettrain.net import losses
from nettrain.optim import make_optimizer
from nettrain.optim.clip import clip_grad_norm

DIVERGED = 4.0  # stop once the smoothed loss exceeds this many times its minimum
# The smoothing of the loss. fastai's 0.98 averages over about 50 steps, half of a 100-step test,
# so the curve lags the rate by 4 decades' worth of steps: on configs/mnist-lenet.yaml (lr 0.05)
# it suggested 0.115, 0.9 suggested 0.038 (0.8 the same).
BETA = 0.9


def range_test(cfg: dict, src=None, start=1e-7, end=10.0, steps=100, beta=BETA) -> list[dict]:
    """Rows {'step', 'lr', 'loss', 'smoothed'} of the range test, up to where it stopped."""
    if not 0 < start < end:
        raise UserError("lr-find", f"--start ({start}) must be positive and below --end ({end})")
    net, train, _ = assemble(cfg, src)
    data.check_learnable(train, cfg["data"])
    train, validation = split_validation(train, cfg, net)  # trains on what fit trains on
    _, (train, _, _), augment = data.for_training(
        cfg["data"], net.input_shape, (train, validation, None), src
    )
    spec = cfg["train"]["class_weights"]
    where = src.where(("train", "class_weights")) if src and spec else "train.class_weights"
    weights = data.class_weights(spec, train, net.n_outputs, where)  # as fit weighs the loss
    losses.check_smoothing(cfg, train.has_classes, src)  # as fit checks it
    net.init_params(init_rng(cfg["seed"]))
    params, grads = net.params(), net.grads()
    optimizer = make_optimizer(cfg["train"]["optimizer"], params)
    seed, tc = cfg["seed"], cfg["train"]
    n, bs = len(train), tc["batch_size"]
    per_epoch = math.ceil(n / bs)
    rows, avg, best = [], 0.0, math.inf
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i in range(steps):
            epoch, b = divmod(i, per_epoch)
            idx = epoch_order(seed, epoch, n, tc["shuffle"])[b * bs : (b + 1) * bs]
            at = Step(seed, i)  # the step's dropout masks and augmented views
            views = at.augment_rng() if augment else None
            x = train.inputs(idx, net.dtype, augment, views)
            t = train.targets(idx, net.n_outputs, net.dtype)
            t = losses.smoothed(t, tc["label_smoothing"]) if tc["label_smoothing"] else t
            w = None if weights is None else weights[train.y[idx]]
            loss, _, _ = net.loss_and_backward(x, t, input_grad=False, step=at, weights=w)
            if not math.isfinite(loss):
                break
            optimizer.lr = start * (end / start) ** (i / max(steps - 1, 1))
            avg = beta * avg + (1 - beta) * loss
            smoothed = avg / (1 - beta ** (i + 1))
            rows.append({"step": i + 1, "lr": optimizer.lr, "loss": loss, "smoothed": smoothed})
            if smoothed > DIVERGED * best:
                break
            best = min(best, smoothed)
            if tc["clip_grad_norm"]:
                clip_grad_norm(grads, tc["clip_grad_norm"])
            optimizer.step(params, grads)
    return rows


def suggestion(rows: list[dict]) -> float | None:
    """The rate of the steepest descent of the smoothed loss against log(rate), looked for up to
    the minimum of the smoothed loss; None when the test is too short to tell."""
    if len(rows) < 3:
        return None
    smoothed = np.array([r["smoothed"] for r in rows])
    lrs = np.array([r["lr"] for r in rows])
    end = int(np.argmin(smoothed)) + 1  # past the minimum, the loss is climbing
    if end < 3:
        return None
    slopes = np.gradient(smoothed[:end], np.log10(lrs[:end]))
    return float(lrs[int(np.argmin(slopes))])


def format_table(rows: list[dict]) -> str:
    lines = [f"{'step':>5} {'lr':>11} {'loss':>11} {'smoothed':>11}"]
    lines += [
        f"{r['step']:>5} {r['lr']:>11.4g} {r['loss']:>11.5g} {r['smoothed']:>11.5g}" for r in rows
    ]
    return "\n".join(lines)


def plot_range_test(rows: list[dict], suggested, configured, path) -> Path:
    """The loss and smoothed loss against the rate (log scale), the suggestion and the config's
    rate marked; a PNG at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(
            "lr-find --plot",
            "matplotlib is not installed",
            "install the plot extra: pip install 'nettrain[plot]'",
        ) from None
    lrs = [r["lr"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, [r["loss"] for r in rows], color="0.7", lw=1, label="loss of the batch")
    ax.plot(lrs, [r["smoothed"] for r in rows], color="C0", lw=2, label="smoothed loss")
    if suggested is not None:
        ax.axvline(suggested, color="C3", ls="--", label=f"suggested lr {suggested:.3g}")
    ax.axvline(configured, color="C2", ls=":", label=f"config's lr {configured:.3g}")
    ax.set_xscale("log")
    low = min(r["smoothed"] for r in rows)
    ax.set_ylim(0, min(max(r["loss"] for r in rows), DIVERGED * low) * 1.05)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    try:
        atomic_write(out, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return out

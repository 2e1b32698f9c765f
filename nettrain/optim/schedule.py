"""Learning-rate schedules (``train.schedule``): the lr of any step, as a pure function.

But for plateau, the lr depends only on (step, epoch), so a resumed run needs no schedule
state. With E the epoch (0-based) the step belongs to, lr0 the optimizer's lr:

- constant:    lr0
- step:        lr0 * gamma ** (E // step_size)
- multistep:   lr0 * gamma ** (number of milestones <= E)   (milestones are epoch numbers)
- exponential: lr0 * gamma ** E                              (DeepCL's "anneal")
- cosine:      min_lr + (lr0 - min_lr) (1 + cos(pi p)) / 2, with p the fraction of the
               post-warm-up steps done, so the lr reaches min_lr at the end of training.
- plateau:     the one schedule with state, as PyTorch's ReduceLROnPlateau (rel mode, no
               cooldown): after every epoch ``plateau_update`` compares the monitored figure with
               the best so far; it improves when below best * (1 - threshold) (above
               best * (1 + threshold) for a figure where higher is better); once more than
               ``patience`` epochs in a row have not improved, lr <- max(lr * factor, min_lr)
               and the count restarts. The lr in force is that state's, which the checkpoint
               holds, so a resumed run goes on with it.

``warmup_epochs`` W > 0 multiplies the lr by (step + 1) / (W * steps per epoch) during the first
W epochs (a linear ramp from near 0), and combines with any of the above.
"""

from __future__ import annotations

import math

from nettrain.core.options import Opt

COMMON = {"warmup_epochs": Opt("float", 0.0, min=0, doc="epochs of linear warm-up")}
SCHEDULES = {
    "constant": {},
    "step": {
        "step_size": Opt("int", min=1, doc="epochs between decays"),
        "gamma": Opt("float", 0.1, min=0, exclusive_min=True, doc="decay factor"),
    },
    "multistep": {
        "milestones": Opt("shape", doc="epochs at which the lr is multiplied by gamma"),
        "gamma": Opt("float", 0.1, min=0, exclusive_min=True, doc="decay factor"),
    },
    "exponential": {
        "gamma": Opt("float", min=0, exclusive_min=True, doc="decay factor per epoch"),
    },
    "cosine": {
        "min_lr": Opt("float", 0.0, min=0, doc="lr at the end of training"),
    },
    "plateau": {
        "monitor": Opt(
            "str",
            "auto",
            doc="the figure watched, e.g. validation_loss; auto: train.checkpoint.monitor's",
        ),
        "factor": Opt(
            "float",
            0.1,
            min=0,
            max=1,
            exclusive_min=True,
            exclusive_max=True,
            doc="the lr is multiplied by this on a plateau",
        ),  # fmt: skip
        "patience": Opt(
            "int", 10, min=0, doc="epochs without improvement tolerated; the next one reduces"
        ),
        "threshold": Opt("float", 1e-4, min=0, doc="relative change that counts as an improvement"),
        "min_lr": Opt("float", 0.0, min=0, doc="the lr is never reduced below this"),
    },
}
PLATEAU_EPS = 1e-8  # a reduction smaller than this is not made (PyTorch's eps)


def lr_at(schedule: dict, lr0: float, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate of global ``step`` (0-based) under a resolved ``train.schedule``."""
    epoch = step // steps_per_epoch
    name = schedule["name"]
    warmup_steps = round(schedule["warmup_epochs"] * steps_per_epoch)
    if name == "constant":
        lr = lr0
    elif name == "step":
        lr = lr0 * schedule["gamma"] ** (epoch // schedule["step_size"])
    elif name == "multistep":
        passed = sum(1 for m in schedule["milestones"] if m <= epoch)
        lr = lr0 * schedule["gamma"] ** passed
    elif name == "exponential":
        lr = lr0 * schedule["gamma"] ** epoch
    elif name == "plateau":  # lr0: the lr the plateau state holds now
        lr = lr0
    elif name == "cosine":
        total = max(epochs * steps_per_epoch - warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / total, 1.0)
        lr = (
            schedule["min_lr"] + (lr0 - schedule["min_lr"]) * (1 + math.cos(math.pi * progress)) / 2
        )
    else:
        raise ValueError(f"unknown schedule {name}")
    if step < warmup_steps:
        lr *= (step + 1) / warmup_steps
    return lr


def plateau_update(state: dict | None, value: float, lr0: float, schedule: dict, higher: bool):
    """The plateau state after an epoch whose monitored figure is ``value``: {'lr', 'best',
    'bad_epochs'}; ``state`` None before the first epoch (lr0 in force, no best yet);
    ``higher``: whether a higher figure is better."""
    state = dict(state or {"lr": lr0, "best": None, "bad_epochs": 0})
    best, threshold = state["best"], schedule["threshold"]
    if best is None or (
        value > best * (1 + threshold) if higher else value < best * (1 - threshold)
    ):
        state.update(best=value, bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    if state["bad_epochs"] > schedule["patience"]:
        lr = max(state["lr"] * schedule["factor"], schedule["min_lr"])
        if state["lr"] - lr > PLATEAU_EPS:
            state["lr"] = lr
        state["bad_epochs"] = 0
    return state

"""Learning-rate schedules (``train.schedule``): the lr of any step, as a pure function.

Because the lr depends only on (step, epoch), a resumed run needs no schedule state. With E the
epoch (0-based) the step belongs to, lr0 the optimizer's lr:

- constant:    lr0
- step:        lr0 * gamma ** (E // step_size)
- multistep:   lr0 * gamma ** (number of milestones <= E)   (milestones are epoch numbers)
- exponential: lr0 * gamma ** E                              (DeepCL's "anneal")
- cosine:      min_lr + (lr0 - min_lr) (1 + cos(pi p)) / 2, with p the fraction of the
               post-warm-up steps done, so the lr reaches min_lr at the end of training.

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
}


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

"""Optimizers: each updates a dict of named parameters in place from a dict of named gradients.

The contract, stated once: ``step(params, grads)`` with both dicts keyed by the parameter names of
SPEC.md (``layers.{i}.weight``); the optimizer owns its state, keyed by the same names, and
exposes it as flat arrays ``optimizer.{param}.{slot}`` for checkpoints.

- sgd: ``w <- w - lr * g``; with momentum m (heavy ball): ``v <- m v + g; w <- w - lr v``.
"""

from __future__ import annotations

import numpy as np

from nettrain.errors import UserError


class SGD:
    slots = ("velocity",)

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.0):
        self.lr = lr
        self.momentum = momentum
        self.state = {}
        if momentum:
            self.state = {name: {"velocity": np.zeros_like(p)} for name, p in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            g = grads[name]
            if self.momentum:
                v = self.state[name]["velocity"]
                v *= self.momentum
                v += g
                g = v
            p -= self.lr * g

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {
            f"optimizer.{name}.{slot}": arr
            for name, slots in self.state.items()
            for slot, arr in slots.items()
        }

    def load_state_arrays(self, arrays: dict, where: str) -> None:
        for key, arr in self.state_arrays().items():
            if key not in arrays:
                raise UserError(where, f"no optimizer state '{key}' in the checkpoint")
            if arrays[key].shape != arr.shape:
                raise UserError(where, f"optimizer state '{key}' has the wrong shape")
            arr[...] = arrays[key]


def make_optimizer(cfg: dict, params: dict[str, np.ndarray]):
    """The optimizer a resolved ``train.optimizer`` section names."""
    if cfg["name"] == "sgd":
        return SGD(params, cfg["lr"], cfg["momentum"])
    raise ValueError(f"unknown optimizer {cfg['name']}")

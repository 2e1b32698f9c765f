"""The optimizer contract, stated once.

``step(params, grads)`` updates a dict of named parameters in place from a dict of gradients with
the same names (``layers.{i}.weight``, docs/formats.md). The optimizer owns its state, one
dict of slots per parameter name, plus ``t``, the number of steps taken; ``state_arrays()``
exposes all of it as flat arrays ``optimizer.{param}.{slot}`` and ``optimizer.t`` for checkpoints.
The learning rate ``lr`` is set from outside before each step (the schedule owns it).

``weight_decay`` (where an optimizer has it) is the classic L2 term added to the gradient,
g <- g + weight_decay * w, except in adamw, which decays the weights directly.
"""

from __future__ import annotations

import numpy as np

from nettrain.core.errors import UserError


class Optimizer:
    name = "optimizer"
    OPTIONS: dict = {}
    slots: tuple = ()
    decoupled_decay = False  # True where update() applies weight_decay itself (adamw)

    def __init__(self, params: dict[str, np.ndarray], lr: float, **options):
        self.lr = lr
        self.options = options
        self.t = 0
        self.state = {
            name: {slot: np.zeros_like(p) for slot in self.slots} for name, p in params.items()
        }

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        decay = 0.0 if self.decoupled_decay else self.options.get("weight_decay", 0.0)
        for name, p in params.items():
            g = grads[name]
            if decay:
                g = g + decay * p
            self.update(p, g, self.state[name])

    def update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            f"optimizer.{name}.{slot}": arr
            for name, slots in self.state.items()
            for slot, arr in slots.items()
        }
        arrays["optimizer.t"] = np.array(self.t, dtype=np.int64)
        return arrays

    def load_state_arrays(self, arrays: dict, where: str) -> None:
        for key, arr in self.state_arrays().items():
            if key not in arrays:
                raise UserError(
                    where,
                    f"no optimizer state '{key}' in the checkpoint",
                    f"it was not written by a {self.name} run with this net",
                )
            if arrays[key].shape != arr.shape:
                raise UserError(
                    where,
                    f"optimizer state '{key}' has shape {arrays[key].shape}, expected {arr.shape}",
                )
            a = arrays[key]
            expected = "an integer" if key == "optimizer.t" else "finite floating-point values"
            if key == "optimizer.t":
                ok = a.dtype.kind in "iu"
            else:
                ok = a.dtype.kind == "f" and bool(np.all(np.isfinite(a)))
            if not ok:
                raise UserError(where, f"optimizer state '{key}' should hold {expected}")
            if key == "optimizer.t":
                self.t = int(arrays[key])
            else:
                arr[...] = arrays[key]

"""SGD, optionally with heavy-ball or Nesterov momentum (docs/config-reference.md; PyTorch's form).

g <- g + weight_decay w;  with momentum m: v <- m v + g, then g <- v (heavy ball) or
g <- g + m v (Nesterov);  w <- w - lr g.
"""

from __future__ import annotations

from nettrain.core.options import Opt
from nettrain.optim.base import Optimizer


class SGD(Optimizer):
    name = "sgd"
    OPTIONS = {
        "lr": Opt("float", 0.01, min=0, exclusive_min=True, doc="learning rate"),
        "momentum": Opt("float", 0.0, min=0, max=1, exclusive_max=True, doc="momentum m"),
        "nesterov": Opt("bool", False, doc="Nesterov momentum (needs momentum > 0)"),
        "weight_decay": Opt("float", 0.0, min=0, doc="L2 penalty added to the gradient"),
    }

    def __init__(self, params, lr, **options):
        self.slots = ("velocity",) if options.get("momentum") else ()
        super().__init__(params, lr, **options)

    def update(self, p, g, state):
        m = self.options.get("momentum", 0.0)
        if m:
            v = state["velocity"]
            v *= m
            v += g
            g = g + m * v if self.options.get("nesterov") else v
        p -= self.lr * g

"""RMSprop: s <- rho s + (1 - rho) g^2;  w <- w - lr g / (sqrt(s) + eps)."""

from __future__ import annotations

import numpy as np

from nettrain.core.options import Opt
from nettrain.optim.base import Optimizer


class RMSprop(Optimizer):
    name = "rmsprop"
    slots = ("mean_sq",)
    OPTIONS = {
        "lr": Opt("float", 0.01, min=0, exclusive_min=True, doc="learning rate"),
        "rho": Opt("float", 0.99, min=0, max=1, exclusive_max=True, doc="decay of the mean"),
        "eps": Opt("float", 1e-8, min=0, exclusive_min=True, doc="added to the denominator"),
        "weight_decay": Opt("float", 0.0, min=0, doc="L2 penalty added to the gradient"),
    }

    def update(self, p, g, state):
        rho = self.options["rho"]
        s = state["mean_sq"]
        s *= rho
        s += (1 - rho) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.options["eps"])

"""Adagrad: G <- G + g^2;  w <- w - lr g / (sqrt(G) + eps)."""

from __future__ import annotations

import numpy as np

from nettrain.core.options import Opt
from nettrain.optim.base import Optimizer


class Adagrad(Optimizer):
    name = "adagrad"
    slots = ("sum_sq",)
    OPTIONS = {
        "lr": Opt("float", 0.01, min=0, exclusive_min=True, doc="learning rate"),
        "eps": Opt("float", 1e-10, min=0, exclusive_min=True, doc="added to the denominator"),
        "weight_decay": Opt("float", 0.0, min=0, doc="L2 penalty added to the gradient"),
    }

    def update(self, p, g, state):
        G = state["sum_sq"]
        G += g * g
        p -= self.lr * g / (np.sqrt(G) + self.options["eps"])

"""Adadelta (Zeiler 2012): s <- rho s + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(s + eps) g;
u <- rho u + (1 - rho) d^2;  w <- w - lr d."""

from __future__ import annotations

import numpy as np

from nettrain.core.options import Opt
from nettrain.optim.base import Optimizer


class Adadelta(Optimizer):
    name = "adadelta"
    slots = ("mean_sq", "mean_sq_delta")
    OPTIONS = {
        "lr": Opt("float", 1.0, min=0, exclusive_min=True, doc="scale of the update"),
        "rho": Opt("float", 0.9, min=0, max=1, exclusive_max=True, doc="decay of the means"),
        "eps": Opt("float", 1e-6, min=0, exclusive_min=True, doc="added inside the roots"),
        "weight_decay": Opt("float", 0.0, min=0, doc="L2 penalty added to the gradient"),
    }

    def update(self, p, g, state):
        rho, eps = self.options["rho"], self.options["eps"]
        s, u = state["mean_sq"], state["mean_sq_delta"]
        s *= rho
        s += (1 - rho) * g * g
        d = np.sqrt(u + eps) / np.sqrt(s + eps) * g
        u *= rho
        u += (1 - rho) * d * d
        p -= self.lr * d

"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019).

m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  with t the step count,
w <- w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
adam adds weight_decay w to g (L2); adamw first decays w <- w - lr weight_decay w.
"""

from __future__ import annotations

import numpy as np

from nettrain.core.options import Opt
from nettrain.optim.base import Optimizer


class Adam(Optimizer):
    name = "adam"
    slots = ("m", "v")
    OPTIONS = {
        "lr": Opt("float", 0.001, min=0, exclusive_min=True, doc="learning rate"),
        "beta1": Opt("float", 0.9, min=0, max=1, exclusive_max=True, doc="decay of the mean"),
        "beta2": Opt("float", 0.999, min=0, max=1, exclusive_max=True, doc="decay of the square"),
        "eps": Opt("float", 1e-8, min=0, exclusive_min=True, doc="added to the denominator"),
        "weight_decay": Opt("float", 0.0, min=0, doc="L2 penalty added to the gradient"),
    }

    def update(self, p, g, state):
        b1, b2, eps = self.options["beta1"], self.options["beta2"], self.options["eps"]
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step = self.lr / (1 - b1**self.t)
        p -= step * m / (np.sqrt(v / (1 - b2**self.t)) + eps)


class AdamW(Adam):
    name = "adamw"
    decoupled_decay = True
    OPTIONS = {
        **Adam.OPTIONS,
        "weight_decay": Opt("float", 0.01, min=0, doc="decoupled decay: w <- w - lr wd w"),
    }

    def update(self, p, g, state):
        p -= self.lr * self.options["weight_decay"] * p
        super().update(p, g, state)

"""The optimizer table: ``train.optimizer.name`` -> class. See base.py for the contract."""

from __future__ import annotations

from nettrain.optim.adadelta import Adadelta
from nettrain.optim.adagrad import Adagrad
from nettrain.optim.adam import Adam, AdamW
from nettrain.optim.base import Optimizer
from nettrain.optim.rmsprop import RMSprop
from nettrain.optim.sgd import SGD

OPTIMIZERS = {cls.name: cls for cls in (SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW)}


def make_optimizer(cfg: dict, params) -> Optimizer:
    """The optimizer a resolved ``train.optimizer`` section names."""
    options = {k: v for k, v in cfg.items() if k not in ("name", "lr")}
    return OPTIMIZERS[cfg["name"]](params, cfg["lr"], **options)


__all__ = ["OPTIMIZERS", "Optimizer", "make_optimizer"]

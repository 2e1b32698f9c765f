"""Preparing a run: build the net, read and check the data, set up the optimizer and the
monitors, and load weights or resume state, all before any file of the run folder is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from nettrain import data
from nettrain.assemble import assemble, split_validation
from nettrain.monitors import Watch, monitors
from nettrain.optim import Optimizer, make_optimizer
from nettrain.streams import init_rng


@dataclass
class Run:
    """Everything a training needs, prepared and checked before any file is written."""

    cfg: dict
    net: object
    train: object
    validation: object
    test: object
    optimizer: Optimizer
    best: Watch | None
    stopping: Watch | None
    state: dict = field(default_factory=dict)
    preprocess: dict = field(default_factory=dict)  # 'preprocess.*' statistics, checkpointed
    augment: object = None  # data.augment.Augment of the training batches, or None


def prepare(cfg: dict, src=None, *, weights=None, resume=None) -> Run:
    """Build the net, read and check the data, set up optimizer and monitors, load weights.

    ``weights``: (arrays, where) to initialise from; ``resume``: (arrays, meta, where).
    """
    net, train, test = assemble(cfg, src)
    train, validation = split_validation(train, cfg, net)
    stats, (train, validation, test), augment = data.for_training(
        cfg["data"], net.input_shape, (train, validation, test), src
    )
    optimizer = make_optimizer(cfg["train"]["optimizer"], net.params())
    splits = {"train": True, "validation": validation is not None, "test": test is not None}
    best, stopping = monitors(cfg, splits, train.has_classes, src)
    state = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "metrics": [],
        "partial": None,
        "best": None,
        "stopping": {"best": None, "wait": 0},
    }
    if resume is not None:
        arrays, meta, where = resume
        net.load_params(arrays, where)
        optimizer.load_state_arrays(arrays, where)
        state.update({k: meta[k] for k in state if k in meta})
    elif weights is not None:
        net.load_params(*weights)
    else:
        net.init_params(init_rng(cfg["seed"]))
    run = Run(cfg, net, train, validation, test, optimizer, best, stopping, state)
    run.preprocess, run.augment = stats, augment
    return run

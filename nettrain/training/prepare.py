"""Preparing a run: build the net, read and check the data, set up the optimizer and the
monitors, and load weights or resume state, all before any file of the run folder is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from nettrain import data
from nettrain.assemble import assemble, split_validation
from nettrain.core.streams import init_rng
from nettrain.data.columns import unseen_note
from nettrain.net.losses import check_smoothing
from nettrain.optim import Optimizer, make_optimizer
from nettrain.optim.average import WeightAverage
from nettrain.training.monitors import Watch, monitors, plateau_watch
from nettrain.training.mpi import Single, world
from nettrain.training.state import TrainState


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
    plateau: Watch | None  # the figure of the plateau schedule, or None
    state: TrainState = field(default_factory=TrainState)
    preprocess: dict = field(default_factory=dict)  # 'preprocess.*' statistics, checkpointed
    augment: object = None  # data.augment.Augment of the training batches, or None
    notes: list = field(default_factory=list)  # what fit tells on stderr before training
    world: Single = field(default_factory=Single)  # the processes training together (MPI)
    class_weights: object = None  # (K,) loss weight per class (train.class_weights), or None
    average: WeightAverage | None = None  # the weights' moving average (train.ema), or None


def prepare(cfg: dict, src=None, *, weights=None, resume=None, sets=None) -> Run:
    """Build the net, read and check the data, set up optimizer and monitors, load weights.

    ``weights``: (arrays, where) to initialise from; ``resume``: (arrays, TrainState, where);
    ``sets``: (train, test) Datasets instead of the config's data.
    """
    net, train, test = assemble(cfg, src, sets=sets)
    data.check_learnable(train, cfg["data"])
    train, validation = split_validation(train, cfg, net)
    stats, (train, validation, test), augment = data.for_training(
        cfg["data"], net.input_shape, (train, validation, test), src
    )
    optimizer = make_optimizer(cfg["train"]["optimizer"], net.params())
    splits = {"train": True, "validation": validation is not None, "test": test is not None}
    best, stopping = monitors(cfg, splits, train.has_classes, src)
    plateau = plateau_watch(cfg, splits, train.has_classes, src, best)
    state = TrainState()
    if resume is not None:
        arrays, state, where = resume
        net.load_params(arrays, where)
        optimizer.load_state_arrays(arrays, where)
    elif weights is not None:
        net.load_params(*weights)
    else:
        net.init_params(init_rng(cfg["seed"]))
    average = WeightAverage(net, cfg["train"]["ema"]) if cfg["train"]["ema"] else None
    if average is not None and resume is not None:
        average.load(net, arrays, where)
    run = Run(cfg, net, train, validation, test, optimizer, best, stopping, plateau, state)
    run.preprocess, run.augment, run.world = stats, augment, world()
    run.average = average
    spec = cfg["train"]["class_weights"]
    where = src.where(("train", "class_weights")) if src and spec else "train.class_weights"
    run.class_weights = data.class_weights(spec, train, net.n_outputs, where)
    tc = cfg["train"]
    check_smoothing(cfg, train.has_classes, src)
    es = tc["early_stopping"]
    run.notes = fit_notes(run, tc["checkpoint"]["monitor"], es and es["monitor"])
    return run


def fit_notes(run: Run, best_monitor: str, stopping_monitor: str | None) -> list[str]:
    """A table's feature columns (type, width, missing fields), the label column ``label: auto``
    took, and what ``monitor: auto`` follows when there is no
    validation set (never the test set, which is only reported)."""
    notes = []
    if run.train.encoding is not None:  # a table: its feature columns as the net sees them
        notes.append(f"{run.train.name}: feature columns\n{run.train.encoding.table()}")
    for ds in (run.train, run.test):  # held-out rows or the test file
        if ds is not None and ds.unseen:
            notes.append(unseen_note(ds.name, ds.unseen))
    if run.train.label_note:
        notes.append(f"{run.train.name}: {run.train.label_note}; data.train.label chooses")
    if run.validation is None and "auto" in (best_monitor, stopping_monitor):
        what = " and ".join(
            w
            for w, m in (("best.npz", best_monitor), ("early stopping", stopping_monitor))
            if m == "auto"
        )
        notes.append(
            f"{what} follow{'s' if ' and ' not in what else ''} train_loss: there is no "
            "validation set (set data.validation, e.g. 0.1, to select on held-out data"
            + ("; the test set is only reported)" if run.test is not None else ")")
        )
    return notes

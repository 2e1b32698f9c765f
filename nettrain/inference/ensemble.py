"""Several checkpoints as one model (docs/commands.md, "Ensembles"): nets
with the same input shape and outputs, whose output is the arithmetic mean of theirs.

A member is (net, meta, where): a net with its weights, the checkpoint's meta (with 'data' and
'preprocess_stats', see ``single.load_net``) and where it came from (a path, or 'fit'). Each
member sees the inputs as its own training data was seen (its own scaling and preprocessing);
predict and evaluate with one member are exactly those of the single net.
"""

from __future__ import annotations

import numpy as np

from nettrain import checkpoint, data
from nettrain.core.errors import UserError
from nettrain.data.augment import crop_view
from nettrain.inference import single


def load(paths) -> list[tuple]:
    """The members of one or more checkpoint paths, after checking they fit together."""
    members = []
    for path in paths:
        arrays, meta = checkpoint.load(path)
        net = single.net_of(arrays, meta, path)
        meta["arrays"] = arrays  # to save the model again as it was read
        members.append((net, meta, str(path)))
    check_members(members)
    return members


def check_members(members: list) -> None:
    """Refuse nets that cannot be averaged: other inputs, outputs or kind of targets."""
    net0, meta0, where0 = members[0]
    for net, meta, where in members[1:]:
        for what, mine, first in (
            ("inputs of shape", net.input_shape, net0.input_shape),
            ("outputs:", net.n_outputs, net0.n_outputs),
            ("targets:", meta.get("targets"), meta0.get("targets")),
        ):
            if mine != first:
                raise UserError(
                    where,
                    f"cannot join the ensemble: its net has {what} {mine}, the net of "
                    f"{where0} {what} {first}",
                    "an ensemble averages nets with the same input shape and outputs",
                )


def inputs(members: list, x) -> list:
    """Per member, the inputs ``x`` as that member's net sees them (Datasets): x is a path
    (predict's INPUT formats) or an array (N, *input_shape) of inputs as stored; float values are
    taken as already scaled, integer pixels get the training data's scaling."""
    sets = []
    for net, meta, _ in members:
        if hasattr(x, "column_names") or hasattr(x, "columns"):  # a DataFrame or arrow Table
            sets.append(single.read_frame(x, net, meta))
        elif isinstance(x, np.ndarray):
            ds = data.checked(x, None, "x")
            ds = crop_view(meta["data"].get("augment"), ds, data.CROP_KEY)
            sets.append(single.preprocessed(ds, net, meta))
        else:
            sets.append(single.read_inputs(str(x), net, meta))
    return sets


def mean_outputs(members: list, sets: list, batch_size: int = 256) -> np.ndarray:
    """(N, K): the mean of the members' outputs on their views of the same inputs."""
    total = None
    for (net, _, _), ds in zip(members, sets, strict=True):
        out = single.predict(net, ds, batch_size)
        total = out if total is None else total + out
    if len(members) > 1:
        total /= total.dtype.type(len(members))
    return total


def labelled(members: list, x, y, path, split: str) -> list:
    """Per member, the labelled set to evaluate on: arrays x, y; a file ``path``; or the
    checkpoints' own test/validation set."""
    sets = []
    for net, meta, _ in members:
        if x is not None:
            ds = data.checked(np.asarray(x), np.asarray(y), "x, y")
            ds = crop_view(meta["data"].get("augment"), ds, data.CROP_KEY)
            ds = single.preprocessed(ds, net, meta)
        else:
            ds = single.evaluation_data(meta, net, path, split)
        sets.append(ds)
    if len({len(ds) for ds in sets}) > 1:
        raise UserError(
            "evaluate",
            "the checkpoints' own test sets differ in size",
            "give the same labelled set to all: --data FILE",
        )
    return sets


def evaluate(members: list, sets: list) -> dict:
    """evaluate's figures (``single.report``) of the members' mean output; with one member,
    exactly ``single.evaluate``'s."""
    net, meta, _ = members[0]
    names = meta.get("classes")
    if len(members) == 1:
        return single.evaluate(net, sets[0], names)
    outputs = mean_outputs(members, sets)
    ds = sets[0]
    t = ds.targets(slice(None), net.n_outputs, net.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss, _ = net.loss(outputs, t)
    from nettrain.net.metrics import predicted_classes

    accuracy = float(np.mean(predicted_classes(outputs) == ds.y)) if ds.has_classes else None
    return single.report(ds, outputs, float(loss), accuracy, names)

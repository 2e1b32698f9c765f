"""The random streams: every random draw nettrain makes comes from one of these generators.

A stream is ``numpy.random.default_rng([seed, STREAM, ...])``: the seed, the stream's id below,
and the position it serves (an epoch, a step, a layer). Any point of a run can therefore be
reproduced without replaying it: a resumed run sees the same shuffles, dropout masks and
augmented views as one never interrupted, and ends bit-identical to it. The ids are fixed:
changing one changes every result drawn from it.

| id | stream | drawn from it |
|---|---|---|
| 0 | ``init_rng(seed)`` | the initial weights |
| 1 | ``epoch_order(seed, epoch, ...)`` | the shuffle order of an epoch |
| 2 | ``dropout_rng(seed, step, layer)`` | the dropout masks of a step's layer |
| 3 | ``gradcheck_rng(seed)`` | gradcheck's samples, biases and random inputs |
| 4 | ``gradcheck_entries_rng(seed)`` | the entries gradcheck checks in a large tensor |
| 5 | ``holdout_order(seed, n)`` | the validation hold-out of the training set |
| 6 | ``augment_rng(seed, step)`` | the augmented views of a step's batch |
| 100, 101, 102 | ``generated_rng(seed, ...)`` | a generated data set (its own ``seed``) |
"""

from __future__ import annotations

import numpy as np

INIT = 0
SHUFFLE = 1
DROPOUT = 2
GRADCHECK = 3
GRADCHECK_ENTRIES = 4
HOLDOUT = 5
AUGMENT = 6
# Generated data sets (data.dataset: xor, blobs, ...) draw from the data set's own seed.
GENERATED_TRAIN = 100
GENERATED_TEST = 101
GENERATED_CENTRES = 102

# The streams a training run draws from, as recorded in every checkpoint's __meta__ "rng".
DESCRIPTION = (
    f"init [seed,{INIT}]; shuffle [seed,{SHUFFLE},epoch]; dropout [seed,{DROPOUT},step,layer]; "
    f"validation [seed,{HOLDOUT}]; augment [seed,{AUGMENT},step]"
)


def init_rng(seed: int) -> np.random.Generator:
    """The generator of the initial weights."""
    return np.random.default_rng([seed, INIT])


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The sample order of ``epoch`` (0-based): a seeded permutation, or 0..n-1."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, SHUFFLE, epoch]).permutation(n)


def dropout_rng(seed: int, step: int, layer: int) -> np.random.Generator:
    """The generator of layer ``layer``'s dropout masks at training step ``step``."""
    return np.random.default_rng([seed, DROPOUT, step, layer])


def gradcheck_rng(seed: int) -> np.random.Generator:
    """gradcheck's draws: the checked samples, small random biases, random inputs and targets."""
    return np.random.default_rng([seed, GRADCHECK])


def gradcheck_entries_rng(seed: int) -> np.random.Generator:
    """The subset of entries gradcheck checks in tensors larger than ``--entries``."""
    return np.random.default_rng([seed, GRADCHECK_ENTRIES])


def holdout_order(seed: int, n: int) -> np.ndarray:
    """The permutation of the n training samples whose first entries are held out."""
    return np.random.default_rng([seed, HOLDOUT]).permutation(n)


def augment_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of step ``step``'s augmented views (data.augment)."""
    return np.random.default_rng([seed, AUGMENT, step])


def generated_rng(seed: int, stream: int) -> np.random.Generator:
    """A generated data set's draws: GENERATED_TRAIN, GENERATED_TEST or GENERATED_CENTRES."""
    return np.random.default_rng([seed, stream])


def bench_rng(seed: int) -> np.random.Generator:
    """``nettrain bench``'s random weights, inputs and targets (timings only, never trained)."""
    return np.random.default_rng(seed)

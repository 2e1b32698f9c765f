"""Fixtures the test files share: small configs built from YAML text, a blob data set with the
small MLP that trains on it, and the in-process CLI call. (Plain helpers that are not fixtures,
such as running one layer by hand, are in helpers.py.)"""

from __future__ import annotations

import pytest
from helpers import invoke, write_blobs

from nettrain.config import ConfigSource, validate

# The small classifier most training tests fit: blobs of 4 features in 3 classes (helpers.
# write_blobs), 90 training and 30 test samples, 6 batches an epoch.
BLOB_MLP = """\
seed: 3
data: {train: train.npz, test: test.npz}
model:
  input: [4]
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 3
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
"""


@pytest.fixture
def make_config(tmp_path):
    """``make_config(text, *sets, name="cfg.yaml", folder=tmp_path) -> (cfg, src)``: ``text``
    written to folder/name, read as that file (errors say ``name:LINE``, relative paths resolve
    against ``folder``), the ``--set`` items applied, validated. Raises the UserError of a bad
    config, as the CLI would print it."""

    def make(text, *sets, name="cfg.yaml", folder=None):
        folder = tmp_path if folder is None else folder
        (folder / name).write_text(text)
        src = ConfigSource.from_text(text, name, folder)
        src.apply_overrides(list(sets))
        return validate(src), src

    return make


@pytest.fixture
def blob_config(tmp_path, make_config):
    """``blob_config(*sets, text=BLOB_MLP) -> (cfg, src)``: tmp_path holds train.npz (90) and
    test.npz (30) of blobs and cfg.yaml, the small MLP that trains on them (with ``sets``)."""
    write_blobs(tmp_path)

    def make(*sets, text=BLOB_MLP):
        return make_config(text, *sets)

    return make


@pytest.fixture(scope="session")
def cli_call():
    """``cli_call(*args, code=0) -> click Result``: ``nettrain ARGS`` in-process (CliRunner),
    its exit code asserted (unless ``code`` is None) with no traceback printed; the result's
    ``exit_code``, ``stdout``, ``stderr`` and ``output`` (both) for further checks."""
    return invoke

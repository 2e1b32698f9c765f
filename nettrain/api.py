"""The Python API (docs/python-api.md): ``nettrain.load`` and ``nettrain.Model``.

A Model is one trained net or an ensemble of them (the mean of their outputs), or a config still
to train. Its methods are the CLI's own steps: ``predict`` and ``evaluate`` run through
nettrain/inference/ensemble.py as ``nettrain predict`` and ``nettrain evaluate`` do, ``fit`` through
``nettrain.training.fit`` as ``nettrain fit`` does, so the same config and seed give the same
bits either way. Nothing is written to disk unless a path is given (``fit(out=...)``, ``save``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nettrain.core.errors import UserError
from nettrain.runtime import threads
from nettrain.runtime.memory import keep_freed_memory


def _ready() -> None:
    """Thread and memory settings as the CLI makes them (NETTRAIN_THREADS, else adapt to the
    load; freed batch memory kept for the next batch)."""
    if not threads.configured():
        threads.configure()
    keep_freed_memory()


def load(ckpt) -> Model:
    """The Model of a checkpoint path, or of a list of paths (an ensemble: the mean of the nets'
    outputs; the nets must take the same input shape and give the same outputs)."""
    _ready()
    from nettrain.inference import ensemble

    paths = [ckpt] if isinstance(ckpt, (str, Path)) else list(ckpt)
    if not paths:
        raise UserError("nettrain.load", "no checkpoint given")
    return Model(members=ensemble.load(paths))


class Model:
    """A net to train, or trained nets to predict with, evaluate and save.

    Made by ``nettrain.load(ckpt)`` or ``Model.from_config(config)``. Shapes: inputs x are
    (N, *input_shape) (e.g. (N, 1, 28, 28) for MNIST; (N, features) is reshaped when the sizes
    agree), outputs (N, K) with K = ``n_outputs``.
    """

    def __init__(self, cfg=None, src=None, members=None):
        self.cfg, self._src = cfg, src  # the resolved config (None until needed, when loaded)
        self._members = members or []  # [(net, meta, where)], see nettrain/inference/ensemble.py
        self._run = None  # the run of the last fit

    @classmethod
    def from_config(cls, config, overrides=None) -> Model:
        """A Model of a config: a YAML path or a dict of the same tree. ``overrides``: a dict
        {'train.epochs': 1, ...} or a list of 'KEY=VALUE' strings, as ``--set`` takes them."""
        _ready()
        from nettrain.config import config_from_dict, load_config

        sets = overrides or ()
        if isinstance(sets, dict):
            sets = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
        if isinstance(config, dict):
            return cls(*config_from_dict(config, sets, "<config dict>", True))
        return cls(*load_config(str(config), sets))

    # -- what the model is ---------------------------------------------------------------------

    @property
    def nets(self) -> list:
        """The trained nets (nettrain.net.network.Network), one per checkpoint."""
        return [net for net, _, _ in self._members]

    @property
    def members(self) -> list:
        """[(net, meta, where)] per checkpoint (nettrain/inference/ensemble.py): what the CLI
        prints from."""
        return list(self._members)

    @property
    def input_shape(self) -> tuple:
        return self._trained("input_shape")[0].input_shape

    @property
    def n_outputs(self) -> int:
        return self._trained("n_outputs")[0].n_outputs

    @property
    def classes(self) -> list | None:
        """The class names of the training data's labels, where it had names."""
        return self._trained("classes")[1].get("classes")

    def _trained(self, what: str):
        if not self._members:
            raise UserError(what, "the model has no trained weights yet", "call fit() first")
        return self._members[0]

    # -- using it ------------------------------------------------------------------------------

    def predict(self, x, batch_size: int = 256):
        """Outputs (N, K) on inputs x: an array (N, *input_shape), a path in any format
        ``nettrain predict`` reads, or a pandas DataFrame of a table's raw rows (its columns by
        name, the label column there or not; docs/csv.md). Float inputs are taken as already
        scaled; integer pixels get the training data's scaling; then ``data.preprocess``. With
        several nets, the mean of their outputs. Exactly what ``nettrain predict --format npy``
        writes."""
        from nettrain.inference import ensemble

        self._trained("predict")
        members = self._members
        return ensemble.mean_outputs(members, ensemble.inputs(members, _array(x)), batch_size)

    def evaluate(self, x=None, y=None, *, split: str = "test") -> dict:
        """Figures on a labelled set: arrays x (N, *input_shape) and y (labels (N,) or targets
        (N, K)), a file path x (as ``evaluate --data``), or with x None the config's ``split``
        ('test' or 'validation'); a DataFrame x holds a table's raw rows with their label
        column. {'samples', 'loss', 'accuracy'}, then rmse/mae/r2 for values,
        or per-class figures and the confusion matrix for classes (``nettrain evaluate``'s)."""
        from nettrain.inference import ensemble

        self._trained("evaluate")
        x = _array(x)
        if not isinstance(x, (str, type(None))) and not _is_table(x) and y is None:
            raise UserError("evaluate", "x given without y", "give the labels or targets y")
        path, x = (x, None) if isinstance(x, str) or _is_table(x) else (None, x)
        sets = ensemble.labelled(self._members, x, y, path, split)
        return ensemble.evaluate(self._members, sets)

    # -- training ------------------------------------------------------------------------------

    def fit(self, x=None, y=None, *, test=None, out=None, callback=None, verbose=False,
            overwrite=False) -> list[dict]:  # fmt: skip
        """Train the net; the metrics rows (one dict per epoch: epoch, train_loss, ...).

        Data: the config's when x is None, else arrays x (N, *input_shape) and y (labels (N,) or
        targets (N, K)); ``test`` = (x, y) adds a scored test set. ``data.validation`` and
        ``data.preprocess`` of the config apply either way. ``out``: a run folder written as by
        ``nettrain fit --out`` (nothing is written without it). ``callback(row)`` is called after
        every epoch; returning False stops there. ``verbose``: print the epoch lines (and, on
        stderr, what ``nettrain fit`` tells: the run folder, notes, kernels being compiled on a
        first run). A model that was trained (or loaded) before goes on from its weights, with
        a new optimizer. Training is nettrain.training.fit's, as for ``nettrain fit``.
        """
        _ready()
        from nettrain import data
        from nettrain.config import config_from_dict
        from nettrain.training.fit import fit
        from nettrain.training.interrupt import Interrupted

        if len(self._members) > 1:
            raise UserError("fit", "an ensemble cannot be trained", "train each net on its own")
        if self.cfg is None:  # a loaded checkpoint: its own config
            _, meta, where = self._members[0]
            self.cfg, self._src = config_from_dict(meta["config"], (), where, x is None)
        sets = None
        if x is not None:
            if y is None:
                raise UserError("fit", "x given without y", "give the labels or targets y")
            tested = None if test is None else data.checked(*map(_array, test), "test")
            sets = (data.checked(_array(x), _array(y), "x, y"), tested)
        weights = None
        if self._members:
            weights = (self._members[0][0].arrays(), "the model's weights")
        try:
            done = fit(
                self.cfg,
                self._src,
                weights=weights,
                sets=sets,
                folder=out,
                overwrite=overwrite,
                output=sys.stdout if verbose else None,
                messages=sys.stderr if verbose else None,
                on_epoch=callback,
            )
        except Interrupted as exc:
            self._trained_by(exc.fitted.run)
            if out is None:  # nothing was saved: an ordinary Ctrl-C, the model as it stands
                raise KeyboardInterrupt from None
            raise
        self._trained_by(done.run)
        return done.rows

    def _trained_by(self, run) -> None:
        """The model is now the net of ``run`` (a fit's prepared run), saved as ``run`` is."""
        self._run = run
        self._members = [(run.net, meta_of(run), "fit")]

    def save(self, path) -> None:
        """Write the model as a checkpoint (as ``nettrain fit`` writes last.npz), atomically."""
        from nettrain import checkpoint
        from nettrain.runtime import environment
        from nettrain.training.run_folder import save_checkpoint

        self._trained("save")
        if len(self._members) > 1:
            raise UserError(str(path), "an ensemble is several checkpoints: save each net")
        if self._run is not None:
            save_checkpoint(self._run, Path(path), environment.describe())
            return
        net, meta, _ = self._members[0]
        arrays = {**meta["arrays"], **net.arrays()}
        dropped = (
            "arrays",
            "data",
            "columns",
            "preprocess_stats",
            "format",
            "nettrain",
            "checksum",
        )
        checkpoint.save(path, arrays, {k: v for k, v in meta.items() if k not in dropped})

    def export(self, path, format: str = "onnx", opset: int | None = None) -> None:
        """Write the model for other tools (``nettrain export``): 'onnx' (one graph; an
        ensemble's averages its nets; ``opset`` default 17) or 'safetensors' (one net's weights
        in PyTorch's layouts). Written atomically."""
        from nettrain.export import export

        self._trained("export")
        export(self._members, format, path, opset)

    def __repr__(self) -> str:
        if not self._members:
            return "Model(untrained)"
        where = ", ".join(w for _, _, w in self._members)
        return f"Model({where}: input {self.input_shape}, {self.n_outputs} outputs)"


def meta_of(run) -> dict:
    """The meta of a prepared run's net, as ``inference.load_net`` gives a checkpoint's."""
    net, ds = run.net, run.train
    return {
        "config": run.cfg,
        "input_shape": list(net.input_shape),
        "n_outputs": net.n_outputs,
        "input_scale": ds.scale,
        "targets": "classes" if ds.has_classes else "values",
        "classes": ds.classes,
        "encoding": ds.encoding and ds.encoding.to_json(),
        "columns": ds.encoding,
        "data": run.cfg["data"],
        "preprocess_stats": run.preprocess,
    }


def _is_table(x) -> bool:
    """A pandas DataFrame or a pyarrow Table (neither package is needed for anything else)."""
    kind = type(x)
    return (kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame") or (
        kind.__module__.startswith("pyarrow") and kind.__name__ == "Table"
    )


def _array(x):
    """A path as str, a table (DataFrame) as it is, anything else as a numpy array (lists too);
    None stays None."""
    if x is None or isinstance(x, str) or _is_table(x):
        return x
    if isinstance(x, Path):
        return str(x)
    import numpy as np

    return np.asarray(x)

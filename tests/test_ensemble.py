"""Several checkpoints in `predict` and `evaluate`: the mean of the nets' outputs; nets that do
not fit together are refused with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nettrain
from nettrain.core.errors import UserError

REPO = Path(nettrain.__file__).resolve().parents[1]
XOR = REPO / "configs" / "xor-mlp.yaml"


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Three xor nets of seeds 1-3, a net with 3 outputs, one on 3 inputs, one of values."""
    folder = tmp_path_factory.mktemp("nets")
    made = {}
    for seed in (1, 2, 3):
        model = nettrain.Model.from_config(XOR, {"seed": seed, "train.epochs": 2})
        model.fit()
        made[seed] = folder / f"xor{seed}.npz"
        model.save(made[seed])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    others = {
        "three": (x, rng.integers(0, 3, 40), 3, "multinomial_cross_entropy"),
        "wide": (np.hstack([x, x[:, :1]]), rng.integers(0, 2, 40), 2, "multinomial_cross_entropy"),
        "values": (x, rng.standard_normal((40, 2)).astype(np.float32), 2, "squared_error"),
    }
    for name, (xs, ys, k, loss) in others.items():
        layers = [{"type": "dense", "units": k}]
        if loss != "squared_error":
            layers.append({"type": "softmax"})
        cfg = {"model": {"layers": layers, "loss": loss}, "train": {"epochs": 1}}
        model = nettrain.Model.from_config(cfg)
        model.fit(xs, ys)
        made[name] = folder / f"{name}.npz"
        model.save(made[name])
    np.savez(folder / "points.npz", x=x, y=(x[:, 0] * x[:, 1] > 0).astype(np.int64))
    made["points"] = folder / "points.npz"
    return made


def test_predict_of_several_is_the_mean(nets, tmp_path, cli_call):
    singles = []
    for seed in (1, 2, 3):
        out = tmp_path / f"{seed}.npy"
        cli_call("predict", nets[seed], nets["points"], "--format", "npy", "--output", out)
        singles.append(np.load(out))
    out = tmp_path / "all.npy"
    args = [nets[1], nets[2], nets[3], nets["points"], "--format", "npy", "--output", out]
    cli_call("predict", *args)
    mean = np.load(out)
    assert mean.dtype == np.float32 and mean.shape == (40, 2)
    assert np.max(np.abs(mean - np.mean(singles, axis=0))) < 1e-6
    output = cli_call("predict", nets[1], nets[2], nets["points"]).output
    assert output.splitlines()[0] == "index,prediction,p0,p1"


def test_evaluate_of_several_scores_the_mean_output(nets, cli_call):
    output = cli_call("evaluate", nets[1], nets[2], nets[3], "--format", "json").output
    result = json.loads(output)
    model = nettrain.load([nets[1], nets[2], nets[3]])
    x, y = np.load(nets["points"])["x"], np.load(nets["points"])["y"]
    assert result["samples"] == 250 and 0 < result["accuracy"] <= 1
    on_points = model.evaluate(x, y)
    expected = np.mean(model.predict(x).argmax(1) == y)
    assert on_points["accuracy"] == pytest.approx(expected)
    p = model.predict(x)[np.arange(40), y]
    assert on_points["loss"] == pytest.approx(-np.mean(np.log(p)), rel=1e-5)
    text = cli_call("evaluate", nets[1], nets[2], "--data", nets["points"]).output
    assert "accuracy" in text and "confusion matrix" in text
    one = cli_call("evaluate", nets[1], "--format", "json").output
    assert json.loads(one) == json.loads(json.dumps(nettrain.load(nets[1]).evaluate()))


@pytest.mark.parametrize(
    "other, message",
    [
        ("three", "outputs: 3"),
        ("wide", "inputs of shape (3,)"),
        ("values", "targets: values"),
    ],
)
def test_nets_that_do_not_fit_together_are_refused(nets, other, message, cli_call):
    output = cli_call("predict", nets[1], nets[other], nets["points"], code=2).output
    assert message in output and "cannot join the ensemble" in output
    assert output.startswith(f"error: {nets[other]}:")
    output = cli_call("evaluate", nets[1], nets[other], code=2).output
    assert message in output


def test_an_ensemble_cannot_be_trained_or_saved_as_one(nets, tmp_path):
    model = nettrain.load([nets[1], nets[2]])
    with pytest.raises(UserError, match="cannot be trained"):
        model.fit()
    with pytest.raises(UserError, match="save each net"):
        model.save(tmp_path / "e.npz")
    assert not (tmp_path / "e.npz").exists()

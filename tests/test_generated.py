"""Built-in generated sets: shapes, labels, determinism, independent test draws; the mapping
form of data.dataset; `nettrain datasets`; the shipped configs of generated sets."""

from pathlib import Path

import numpy as np
import pytest

from nettrain import data
from nettrain.core.errors import UserError
from nettrain.data import generated

REPO = Path(__file__).resolve().parents[1]


def spec(name, **options):
    defaults = {k: o.default for k, o in generated.GENERATED[name].items()}
    return generated.resolved({"name": name, **defaults, **options})


@pytest.mark.parametrize("name", sorted(generated.GENERATED))
def test_shapes_labels_and_determinism(name):
    s = spec(name, n=90, n_test=30)
    train, test = data.builtin(s)
    features, classes, _ = generated.shapes(s)
    assert train.x.shape == (90, features) and test.x.shape == (30, features)
    assert train.has_classes and set(np.unique(train.y)) == set(range(classes))
    assert np.all(np.isfinite(train.x))
    again, _ = data.builtin(s)
    np.testing.assert_array_equal(again.x, train.x)
    np.testing.assert_array_equal(again.y, train.y)
    assert not np.allclose(train.x[:30], test.x)  # the test set is its own draw
    other, _ = data.builtin(spec(name, n=90, n_test=30, seed=1))
    assert not np.allclose(other.x, train.x)


def test_noise_free_sets_lie_where_documented():
    circles, _ = data.builtin(spec("circles", noise=0.0))
    radius = np.hypot(*circles.x.T)
    np.testing.assert_allclose(radius, np.where(circles.y == 0, 1.0, 0.5))
    xor, _ = data.builtin(spec("xor", noise=0.0))
    np.testing.assert_array_equal(xor.y, (xor.x[:, 0] > 0) != (xor.x[:, 1] > 0))
    spirals, _ = data.builtin(spec("spirals", noise=0.0, classes=4))
    assert np.hypot(*spirals.x.T).max() <= 1.0
    blobs, test = data.builtin(spec("blobs", classes=4, features=3, noise=0.0))
    assert len(np.unique(blobs.x, axis=0)) == 4  # every point on its class's centre
    np.testing.assert_array_equal(np.unique(blobs.x, axis=0), np.unique(test.x, axis=0))


def config(make_config, dataset):
    model = "model:\n  layers: [softmax]\n  loss: multinomial_cross_entropy\n"
    return make_config(f"data:\n  dataset: {dataset}\n{model}")[0]


def test_dataset_config_forms(make_config):
    cfg = config(make_config, "{name: spirals, n: 1000, classes: 3, noise: 0.2}")
    assert cfg["data"]["dataset"] == {
        "name": "spirals",
        "n": 1000,
        "n_test": 250,
        "noise": 0.2,
        "classes": 3,
        "seed": 0,
    }
    assert config(make_config, "mnist")["data"]["dataset"] == {"name": "mnist"}
    assert config(make_config, "moons")["data"]["dataset"]["noise"] == 0.1
    with pytest.raises(UserError, match="cfg.yaml:2: data.dataset.name: unknown name 'spiral'"):
        config(make_config, "spiral")
    with pytest.raises(UserError, match="cfg.yaml:2: data.dataset.classes: unknown key"):
        config(make_config, "{name: moons, classes: 3}")
    with pytest.raises(UserError, match="data.dataset.n: expected an integer >= 1, got 0"):
        config(make_config, "{name: xor, n: 0}")


def test_datasets_command_lists_every_set_with_shapes(cli_call):
    result = cli_call("datasets")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "train", "test", "classes", "options"]
    assert lines[1].split()[:6] == ["mnist", "60000", "x", "1x28x28", "10000", "x"]
    for name in generated.GENERATED:
        assert any(line.startswith(name) for line in lines)
    assert "blobs    1000 x 2          250 x 2           3" in result.stdout


GENERATED_CONFIGS = ["xor-mlp", "spirals-mlp", "circles-mlp", "moons-mlp", "blobs-softmax"]


@pytest.mark.parametrize("name", GENERATED_CONFIGS)
def test_generated_configs_pass_gradcheck_and_learn(name, tmp_path, cli_call):
    config = REPO / "configs" / f"{name}.yaml"
    cli_call("gradcheck", config)
    cli_call("fit", config, "--out", tmp_path, "--set", "train.epochs=3")
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("test_accuracy")]) > 0.6

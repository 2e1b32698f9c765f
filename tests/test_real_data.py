"""Everyday files as a new user writes them: the label column last by name, text labels,
integer regression targets, 0/1 labels with one sigmoid unit; what counts as classes and what as
values, the figures of each task, and model selection that never looks at the test set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import invoke as run

from nettrain import data
from nettrain.core.errors import UserError
from nettrain.data.tables import read_csv

CLASSIFIER = """\
seed: 1
data: {{train: {train}, test: {test}{extra}}}
model:
  layers:
    - {{type: dense, units: 8, activation: tanh}}
    - {{type: dense, units: {units}}}
    - softmax
  loss: multinomial_cross_entropy
train: {{epochs: 4, batch_size: 16, optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}}}
"""

REGRESSOR = """\
seed: 2
data: {{train: {train}, test: {test}, preprocess: standardize{extra}}}
model:
  layers:
    - {{type: dense, units: 1}}
  loss: squared_error
train: {{epochs: 30, batch_size: 16, optimizer: {{name: adam, lr: 2.0}}}}
"""

BINARY = """\
seed: 3
data: {{train: {train}, test: {test}{extra}}}
model:
  layers:
    - {{type: dense, units: 1, activation: sigmoid}}
  loss: cross_entropy
train: {{epochs: 5, batch_size: 16, optimizer: {{name: sgd, lr: 0.5}}}}
"""


def write_csv(path, header, columns):
    """A CSV with ``header`` and one row per sample of ``columns`` (a list of 1-D arrays)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(zip(*columns, strict=True))
    return path


def blobs(n, seed):
    """x (n, 4) float around three centres, labels 0..2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.array([[2, 0, 0, 1], [0, 2, 0, -1], [0, 0, 2, 0]])[y] + 0.5 * rng.standard_normal((n, 4))
    return x.round(4), y


def label_last(folder, name, n, seed, label="label", text=None):
    """Features f0..f3, then the label column ``label`` (text names from ``text`` when given)."""
    x, y = blobs(n, seed)
    labels = [text[v] for v in y] if text else y
    header = [f"f{i}" for i in range(4)] + [label]
    return write_csv(folder / name, header, [*x.T, labels]), x, y


def fit(folder, template, out, sets=(), code=0, **fields):
    (folder / "c.yaml").write_text(template.format(extra="", **fields))
    args = ["fit", folder / "c.yaml", "--out", out]
    for s in sets:
        args += ["--set", s]
    return run(*args, code=code)


def metrics_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def evaluate_json(ckpt, *args):
    return json.loads(run("evaluate", ckpt, *args, "--format", "json").stdout)


def predictions(ckpt, path):
    """predict's CSV rows as dicts."""
    lines = run("predict", ckpt, path).stdout.splitlines()
    return list(csv.DictReader(lines))


# -- 1. the label column ---------------------------------------------------------------------


@pytest.mark.parametrize("label", ["label", "target", "Target", "CLASS", "y"])
def test_label_column_found_by_name_anywhere(tmp_path, label):
    path, x, y = label_last(tmp_path, "d.csv", 12, 0, label=label)
    ds = data.load_file(str(path))
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_allclose(ds.x, x)
    assert ds.label_note == f"the labels are column 4 ('{label}'), found by its name"


def test_label_column_is_the_first_when_no_name_matches(tmp_path):
    x, y = blobs(10, 0)
    path = write_csv(tmp_path / "d.csv", ["digit", "a", "b", "c", "d"], [y, *x.T])
    ds = data.load_file(str(path))
    np.testing.assert_array_equal(ds.y, y)
    assert ds.label_note.startswith("the labels are column 0 ('digit'), the first column")
    path = write_csv(tmp_path / "bare.csv", None, [y, *x.T])  # no header at all
    assert data.load_file(str(path)).label_note.startswith("the labels are column 0, the first")
    given = data.load_file({"path": str(path), "label": 0})
    assert given.label_note is None  # a label the config gives needs no note


def test_fit_says_which_column_it_took_and_trains_on_it(tmp_path):
    label_last(tmp_path, "train.csv", 150, 0)
    label_last(tmp_path, "test.csv", 60, 1)
    result = fit(
        tmp_path, CLASSIFIER, tmp_path / "run", train="train.csv", test="test.csv", units=3
    )
    assert "train.csv: the labels are column 4 ('label'), found by its name" in result.stderr
    assert "data.train.label chooses" in result.stderr
    assert float(metrics_rows(tmp_path / "run")[-1]["test_accuracy"]) > 0.9


def test_a_single_training_class_is_an_error_naming_the_key(tmp_path):
    x, y = blobs(40, 0)
    pixel = np.zeros(40, np.int64)  # a blank pixel first, the label last under another name
    write_csv(tmp_path / "train.csv", ["pixel0", "a", "b", "c", "d", "digit"], [pixel, *x.T, y])
    result = fit(
        tmp_path, CLASSIFIER, tmp_path / "run", train="train.csv", test="train.csv", units=3, code=2
    )
    first, hint = result.stderr.splitlines()[:2]
    assert first.startswith("error: ") and "train.csv" in first
    assert "every label is 0: a single class" in first and "column 0 ('pixel0')" in first
    assert "data.train.label" in hint
    assert not (tmp_path / "run").exists()
    ok = fit(
        tmp_path,
        CLASSIFIER,
        tmp_path / "run",
        ["data.train.label=digit", "data.test.label=digit"],
        train="{path: train.csv, label: digit}",
        test="{path: train.csv, label: digit}",
        units=3,
    )
    assert "the labels are" not in ok.stderr


def test_a_constant_regression_target_is_an_error(tmp_path):
    x = np.random.default_rng(0).standard_normal((30, 3)).round(3)
    write_csv(tmp_path / "r.csv", ["a", "b", "c", "target"], [*x.T, np.full(30, 7.5)])
    result = fit(tmp_path, REGRESSOR, tmp_path / "run", train="r.csv", test="r.csv", code=2)
    assert "r.csv: target column 0 holds 7.5 in every sample" in result.stderr
    assert "column 3 ('target'), found by its name): nothing to learn" in result.stderr
    assert "data.train.label" in result.stderr


# -- 2. evaluate --data and predict read a file as training read its own ------------------------


def test_evaluate_on_a_label_last_csv_matches_the_real_accuracy(tmp_path):
    label_last(tmp_path, "train.csv", 150, 0)
    label_last(tmp_path, "test.csv", 60, 1)
    fit(tmp_path, CLASSIFIER, tmp_path / "run", train="train.csv", test="test.csv", units=3)
    ckpt = tmp_path / "run/last.npz"
    result = evaluate_json(ckpt, "--data", tmp_path / "test.csv")
    assert result["samples"] == 60
    assert result["accuracy"] == pytest.approx(
        float(metrics_rows(tmp_path / "run")[-1]["test_accuracy"])
    )
    assert result["accuracy"] == pytest.approx(evaluate_json(ckpt)["accuracy"])


def test_evaluate_and_predict_take_the_training_label_option(tmp_path):
    """A CSV without header, its label given as -1: evaluate --data and predict use it too."""
    for name, n, seed in (("train.csv", 150, 0), ("test.csv", 60, 1)):
        x, y = blobs(n, seed)
        write_csv(tmp_path / name, None, [*x.T, y])
    fit(
        tmp_path,
        CLASSIFIER,
        tmp_path / "run",
        train="{path: train.csv, label: -1}",
        test="{path: test.csv, label: -1}",
        units=3,
    )
    ckpt = tmp_path / "run/last.npz"
    expected = float(metrics_rows(tmp_path / "run")[-1]["test_accuracy"])
    assert evaluate_json(ckpt, "--data", tmp_path / "test.csv")["accuracy"] == pytest.approx(
        expected
    )
    rows = predictions(ckpt, tmp_path / "test.csv")
    _, y = blobs(60, 1)
    predicted = np.array([int(r["prediction"]) for r in rows])
    assert np.mean(predicted == y) == pytest.approx(expected)


def test_evaluate_on_a_regression_npz_matches_training(tmp_path):
    rng = np.random.default_rng(4)
    for name, n in (("train.npz", 160), ("test.npz", 40)):
        x = rng.standard_normal((n, 3)).astype(np.float32)
        y = np.clip(np.round(150 + 60 * x[:, 0] - 30 * x[:, 1]), 25, 346).astype(np.int64)
        np.savez(tmp_path / name, x=x, y=y)
    fit(tmp_path, REGRESSOR, tmp_path / "run", train="train.npz", test="test.npz")
    last = metrics_rows(tmp_path / "run")[-1]
    result = evaluate_json(tmp_path / "run/last.npz", "--data", tmp_path / "test.npz")
    for key in ("loss", "rmse", "mae", "r2"):
        assert result[key] == pytest.approx(float(last[f"test_{key}"]), rel=1e-5), key


# -- 3. integer regression targets are values -------------------------------------------------


def diabetes_like(folder, name, n, seed):
    """Three features and an integer target in 25..346 (as scikit-learn's diabetes), last."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).round(4)
    y = np.clip(np.round(150 + 60 * x[:, 0] - 30 * x[:, 1] + 5 * rng.standard_normal(n)), 25, 346)
    write_csv(folder / name, ["age", "bmi", "bp", "target"], [*x.T, y.astype(np.int64)])
    return x, y


@pytest.mark.parametrize("label", [None, "[target]"])
def test_integer_regression_targets_train_as_values(tmp_path, label):
    diabetes_like(tmp_path, "train.csv", 200, 0)
    _, y = diabetes_like(tmp_path, "test.csv", 50, 1)
    sets = (
        [f"data.train={{path: train.csv, label: {label}}}"]
        + [f"data.test={{path: test.csv, label: {label}}}"]
        if label
        else []
    )
    if label:  # --set paths resolve against the current folder: give them absolute
        sets = [s.replace("train.csv", str(tmp_path / "train.csv")) for s in sets]
        sets = [s.replace("test.csv", str(tmp_path / "test.csv")) for s in sets]
    result = fit(tmp_path, REGRESSOR, tmp_path / "run", sets, train="train.csv", test="test.csv")
    assert "test_rmse" in result.stdout and "test_r2" in result.stdout
    assert "acc" not in result.stdout
    last = metrics_rows(tmp_path / "run")[-1]
    assert float(last["test_r2"]) > 0.9  # the target is nearly linear in the features
    ckpt = tmp_path / "run/last.npz"
    result = evaluate_json(ckpt, "--data", tmp_path / "test.csv")
    assert result["accuracy"] is None
    o = np.array([float(r["y0"]) for r in predictions(ckpt, tmp_path / "test.csv")])
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((o - y) ** 2)), rel=1e-4)
    assert result["mae"] == pytest.approx(np.mean(np.abs(o - y)), rel=1e-4)
    r2 = 1 - np.sum((o - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert result["r2"] == pytest.approx(r2, rel=1e-4)
    text = run("evaluate", ckpt, "--data", tmp_path / "test.csv").stdout
    assert "rmse" in text and "r2" in text and "accuracy" not in text


def test_regression_monitors(tmp_path):
    diabetes_like(tmp_path, "train.csv", 200, 0)
    diabetes_like(tmp_path, "test.csv", 50, 1)
    sets = ["data.validation=40", "train.epochs=6", "train.checkpoint.monitor=validation_r2"]
    fit(tmp_path, REGRESSOR, tmp_path / "r2", sets, train="train.csv", test="test.csv")
    from nettrain import checkpoint

    r2 = [float(r["validation_r2"]) for r in metrics_rows(tmp_path / "r2")]
    assert checkpoint.load(tmp_path / "r2/best.npz")[1]["epoch"] == int(np.argmax(r2)) + 1
    sets[-1] = "train.checkpoint.monitor=validation_rmse"
    fit(tmp_path, REGRESSOR, tmp_path / "rmse", sets, train="train.csv", test="test.csv")
    rmse = [float(r["validation_rmse"]) for r in metrics_rows(tmp_path / "rmse")]
    assert checkpoint.load(tmp_path / "rmse/best.npz")[1]["epoch"] == int(np.argmin(rmse)) + 1
    result = fit(
        tmp_path,
        REGRESSOR,
        tmp_path / "bad",
        ["train.checkpoint.monitor=test_accuracy"],
        train="train.csv",
        test="test.csv",
        code=2,
    )
    assert "train.checkpoint.monitor" in result.stderr and "test_rmse" in result.stderr


def test_rmse_monitor_on_classes_is_refused(tmp_path):
    label_last(tmp_path, "train.csv", 60, 0)
    label_last(tmp_path, "test.csv", 30, 1)
    result = fit(
        tmp_path,
        CLASSIFIER,
        tmp_path / "run",
        ["train.early_stopping.monitor=test_mae"],
        train="train.csv",
        test="test.csv",
        units=3,
        code=2,
    )
    assert "train.early_stopping.monitor" in result.stderr and "needs values" in result.stderr


# -- text labels -------------------------------------------------------------------------------


def test_text_labels_evaluate_shows_the_class_names(tmp_path):
    names = ["setosa", "versicolor", "virginica"]
    label_last(tmp_path, "train.csv", 150, 0, label="species", text=names)
    label_last(tmp_path, "test.csv", 60, 1, label="species", text=names)
    (tmp_path / "c.yaml").write_text(
        CLASSIFIER.format(
            train="{path: train.csv, label: species}",
            test="{path: test.csv, label: species}",
            units=3,
            extra="",
        )
    )
    run("fit", tmp_path / "c.yaml", "--out", tmp_path / "run")
    ckpt = tmp_path / "run/last.npz"
    text = run("evaluate", ckpt).stdout
    assert "versicolor" in text and "virginica" in text
    table = text.split("confusion matrix")[1].splitlines()
    assert table[1].split() == names and table[2].split()[0] == "setosa"
    result = evaluate_json(ckpt, "--data", tmp_path / "test.csv")
    assert [c["name"] for c in result["classes"]] == names
    rows = predictions(ckpt, tmp_path / "test.csv")
    assert {r["class"] for r in rows} <= set(names)


def test_text_labels_for_one_squared_error_output_are_ambiguous(tmp_path):
    label_last(tmp_path, "train.csv", 40, 0, text=["a", "b", "c"])
    result = fit(tmp_path, REGRESSOR, tmp_path / "run", train="train.csv", test="train.csv", code=2)
    assert "class names (a, b, c), not values" in result.stderr
    assert "model.loss settles it" in result.stderr


# -- 4. 0/1 labels with one sigmoid unit ---------------------------------------------------------


def binary_csv(folder, name, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).round(4)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    write_csv(folder / name, ["a", "b", "Target"], [*x.T, y])
    return x, y


def test_binary_labels_with_one_sigmoid_unit(tmp_path):
    binary_csv(tmp_path, "train.csv", 200, 0)
    x, y = binary_csv(tmp_path, "test.csv", 80, 1)
    result = fit(tmp_path, BINARY, tmp_path / "run", train="train.csv", test="test.csv")
    assert "train_acc" in result.stdout and "test_acc" in result.stdout
    last = metrics_rows(tmp_path / "run")[-1]
    assert float(last["test_accuracy"]) > 0.9
    ckpt = tmp_path / "run/last.npz"
    rows = predictions(ckpt, tmp_path / "test.csv")
    assert list(rows[0]) == ["index", "prediction", "p"]
    p = np.array([float(r["p"]) for r in rows])
    predicted = np.array([int(r["prediction"]) for r in rows])
    np.testing.assert_array_equal(predicted, (p >= 0.5).astype(int))
    assert set(predicted) == {0, 1} and np.all((p > 0) & (p < 1))
    result = evaluate_json(ckpt, "--data", tmp_path / "test.csv")
    accuracy = np.mean(predicted == y)
    assert result["accuracy"] == pytest.approx(accuracy)
    assert result["accuracy"] == pytest.approx(float(last["test_accuracy"]))
    tp = np.sum((predicted == 1) & (y == 1))
    precision, recall = tp / np.sum(predicted == 1), tp / np.sum(y == 1)
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert np.array(result["confusion"]).shape == (2, 2)
    text = run("evaluate", ckpt).stdout
    assert "precision" in text.splitlines()[3] and "accuracy" in text


def test_binary_float_targets_in_an_npz_get_accuracy_and_pick_best_by_it(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("train.npz", 200), ("val.npz", 60)):
        x = rng.standard_normal((n, 2)).astype(np.float32)
        y = (x[:, :1] - x[:, 1:] > 0).astype(np.float32)  # (N, 1) float 0/1
        np.savez(tmp_path / name, x=x, y=y)
    sets = ["data.validation=" + str(tmp_path / "val.npz")]
    fit(tmp_path, BINARY, tmp_path / "run", sets, train="train.npz", test="val.npz")
    rows = metrics_rows(tmp_path / "run")
    assert "validation_accuracy" in rows[0] and "train_accuracy" in rows[0]
    from nettrain import checkpoint

    best = checkpoint.load(tmp_path / "run/best.npz")[1]
    accuracy = [float(r["validation_accuracy"]) for r in rows]
    assert best["epoch"] == int(np.argmax(accuracy)) + 1


def test_labels_beyond_0_1_for_one_cross_entropy_output_are_an_error(tmp_path):
    label_last(tmp_path, "train.csv", 40, 0)  # labels 0..2
    result = fit(tmp_path, BINARY, tmp_path / "run", train="train.csv", test="train.csv", code=2)
    first = result.stderr.splitlines()[0]
    assert "label 2 with one cross_entropy output, which takes 0/1 labels" in first
    assert "model.loss settles it" in result.stderr


def test_class_labels_for_a_softmax_over_one_unit_are_an_error(tmp_path):
    binary_csv(tmp_path, "train.csv", 40, 0)
    result = fit(
        tmp_path, CLASSIFIER, tmp_path / "run", train="train.csv", test="train.csv", units=1, code=2
    )
    assert "a softmax over one unit is always 1" in result.stderr


def test_several_outputs_take_integer_labels_as_classes():
    ds = data.checked(np.zeros((4, 2)), np.array([0, 1, 2, 1]), "d")
    fitted = data.fit_to_net(ds, (2,), 3, "squared_error")
    assert fitted.has_classes
    np.testing.assert_array_equal(fitted.targets(slice(None), 3, np.float32)[2], [0, 0, 1])
    values = data.fit_to_net(ds, (2,), 1, "squared_error")
    assert values.y.shape == (4, 1) and values.y.dtype == np.float64
    binary = data.fit_to_net(replace_y(ds, np.array([0, 1, 1, 0])), (2,), 1, "cross_entropy")
    np.testing.assert_array_equal(binary.targets(slice(None), 1, np.float32)[:, 0], [0, 1, 1, 0])
    with pytest.raises(UserError, match="out of range") as info:
        data.fit_to_net(ds, (2,), 2, "squared_error")
    assert "one unit per class" in info.value.hint


def replace_y(ds, y):
    from dataclasses import replace

    return replace(ds, y=y)


# -- 8. model selection never looks at the test set ----------------------------------------------


def test_early_stopping_auto_watches_train_loss_even_with_a_test_set(tmp_path):
    label_last(tmp_path, "train.csv", 60, 0)
    label_last(tmp_path, "test.csv", 30, 1)
    result = fit(
        tmp_path,
        CLASSIFIER,
        tmp_path / "run",
        ["train.early_stopping.patience=2"],
        train="train.csv",
        test="test.csv",
        units=3,
    )
    assert "best.npz and early stopping follow train_loss" in result.stderr
    from nettrain import config
    from nettrain.training.prepare import prepare

    cfg, src = config.load_config(tmp_path / "c.yaml", ["train.early_stopping.patience=2"])
    prepared = prepare(cfg, src)
    assert prepared.best.metric == prepared.stopping.metric == "train_loss"
    cfg, src = config.load_config(tmp_path / "c.yaml", ["data.validation=0.2"])
    assert prepare(cfg, src).best.metric == "validation_accuracy"


# -- point 10: the hint of a wrong-width input ---------------------------------------------------


def test_a_wrong_width_predict_input_gets_a_hint_for_a_trained_net(tmp_path):
    label_last(tmp_path, "train.csv", 60, 0)
    label_last(tmp_path, "test.csv", 30, 1)
    fit(tmp_path, CLASSIFIER, tmp_path / "run", train="train.csv", test="test.csv", units=3)
    np.savetxt(tmp_path / "wide.csv", np.zeros((3, 7)), delimiter=",")
    result = run("predict", tmp_path / "run/last.npz", tmp_path / "wide.csv", code=2)
    assert "samples have shape (7,), the net's input is (4,)" in result.stderr
    assert "model.input" not in result.stderr
    assert "takes 4 values per sample" in result.stderr


def test_the_only_text_column_is_the_label_when_none_is_named(tmp_path):
    """iris as users write it: four measurements, then 'species' names; no label key."""
    rng = np.random.default_rng(4)
    names = np.array(["setosa", "versicolor", "virginica"])
    y = rng.integers(0, 3, 90)
    x = rng.standard_normal((90, 4)) + 2.0 * y[:, None]
    lines = ["a,b,c,d,species"] + [
        ",".join(f"{v:.3f}" for v in row) + f",{names[k]}" for row, k in zip(x, y, strict=True)
    ]
    (tmp_path / "iris.csv").write_text("\n".join(lines) + "\n")
    ds = read_csv(tmp_path / "iris.csv")
    assert ds.classes == list(names) and ds.x.shape == (90, 4)
    assert "the only column holding text" in ds.label_note and "species" in ds.label_note
    np.testing.assert_array_equal(ds.y, y)
    (tmp_path / "plain.csv").write_text("1,2,3\n4,5,6\n")  # no text: still the first column
    assert "the first column" in read_csv(tmp_path / "plain.csv").label_note

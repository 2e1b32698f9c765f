"""nettrain on everyday CSV files, next to scikit-learn on the same split.

    pip install scikit-learn pandas palmerpenguins vega_datasets   # benchmark-only
    NETTRAIN_THREADS=1 python benchmarks/real_data.py [--seed 0] [--folder FOLDER]

scikit-learn's bundled digits (10 classes), breast cancer (binary) and diabetes (regression,
integer targets 25..346) are written as CSV files the way users have them: a header, the label
last in a column named ``target``. Each is split 80/20 by ``--seed`` (stratified for the
classifiers) into ``NAME-train.csv`` and ``NAME-test.csv``; nettrain trains on the first with a
config that names no label column (``label: auto`` finds ``target``) and ``standardize``
preprocessing, and ``nettrain evaluate --data NAME-test.csv`` scores the second. scikit-learn's
MLPClassifier / LogisticRegression (classifiers) and Ridge / MLPRegressor (diabetes) are fitted on
the same standardized split. nettrain holds out 20% of its training file (``data.validation:
0.2``), and its ``best.npz`` (the epoch with the best validation figure: the test set is never
used to choose) is the one scored. FOLDER (default benchmarks/results/real-data, not kept in
the repository) receives the files, configs, runs and results.json. The table shows test
accuracy for the classifiers, RMSE and R2 for diabetes (the figures, not speed: nothing here is
timed). Then two everyday tables with category columns and missing fields (penguins, cars:
benchmarks/real_tables.py), against scikit-learn pipelines that impute, one-hot and standardize.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_tables  # noqa: E402  (beside this file)

# nettrain's configs: {train} and {test} are filled in; no label key, standardized inputs
CONFIGS = {
    "digits": """\
seed: {seed}
data: {{train: {train}, test: {test}, validation: 0.2, preprocess: standardize}}
model:
  layers:
    - {{type: dense, units: 64, activation: relu}}
    - {{type: dense, units: 10}}
    - softmax
  loss: multinomial_cross_entropy
train: {{epochs: 60, batch_size: 32, optimizer: {{name: adam, lr: 0.001}}}}
""",
    "breast_cancer": """\
seed: {seed}
data: {{train: {train}, test: {test}, validation: 0.2, preprocess: standardize}}
model:
  layers:
    - {{type: dense, units: 16, activation: tanh}}
    - {{type: dense, units: 1, activation: sigmoid}}
  loss: cross_entropy
train: {{epochs: 60, batch_size: 32, optimizer: {{name: adam, lr: 0.001}}}}
""",
    "diabetes": """\
seed: {seed}
data: {{train: {train}, test: {test}, validation: 0.2, preprocess: standardize}}
model:
  layers:
    - {{type: dense, units: 16, activation: relu}}
    - {{type: dense, units: 1}}
  loss: squared_error
train:
  epochs: 300
  batch_size: 32
  optimizer: {{name: adam, lr: 0.1}}
  early_stopping: {{patience: 30}}
""",
}


CONFIGS.update(real_tables.CONFIGS)

# how the table names nettrain's net of each config
NETS = {
    "digits": "nettrain 64 relu",
    "breast_cancer": "nettrain 16 tanh, 1 sigmoid",
    "diabetes": "nettrain 16 relu, 1 linear",
    **real_tables.NETS,
}


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, names) -> None:
    """A header (feature names, then ``target``) and one row per sample, the label last."""
    integer = np.all(y == np.round(y))
    with open(path, "w") as f:
        f.write(",".join([*names, "target"]) + "\n")
        for row, label in zip(x, y, strict=True):
            label = str(int(label)) if integer else repr(float(label))
            f.write(",".join(repr(float(v)) for v in row) + "," + label + "\n")


def datasets(seed: int):
    """(name, task, x_train, x_test, y_train, y_test, feature names) of the three sets."""
    from sklearn import datasets as sk
    from sklearn.model_selection import train_test_split

    for name, load, task in (
        ("digits", sk.load_digits, "classes"),
        ("breast_cancer", sk.load_breast_cancer, "binary"),
        ("diabetes", sk.load_diabetes, "regression"),
    ):
        bunch = load()
        names = [str(n).replace(" ", "_") for n in bunch.feature_names]
        stratify = bunch.target if task != "regression" else None
        split = train_test_split(
            bunch.data, bunch.target, test_size=0.2, random_state=seed, stratify=stratify
        )
        yield (name, task, *split, names)


def nettrain(name: str, folder: Path, seed: int) -> dict:
    """Train nettrain on NAME-train.csv and evaluate it on NAME-test.csv: evaluate's JSON."""
    config = folder / f"{name}.yaml"
    train, test = folder / f"{name}-train.csv", folder / f"{name}-test.csv"
    config.write_text(CONFIGS[name].format(seed=seed, train=train, test=test))
    run_dir = folder / f"run-{name}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    nettrain = [sys.executable, "-m", "nettrain"]
    fit = [*nettrain, "fit", str(config), "--out", str(run_dir), "--overwrite", "--quiet"]
    done = subprocess.run(fit, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"nettrain fit {name} failed:\n{done.stderr}")
    notes = [ln for ln in done.stderr.splitlines() if "labels are" in ln]
    evaluate = [*nettrain, "evaluate", str(run_dir / "best.npz"), "--data", str(test)]
    done = subprocess.run([*evaluate, "--format", "json"], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"nettrain evaluate {name} failed:\n{done.stderr}")
    return {**json.loads(done.stdout), "notes": notes}


def sklearn_models(task: str, seed: int):
    """(label, estimator) pairs of scikit-learn's models for a task, on standardized inputs."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        models = [
            ("Ridge", Ridge(alpha=1.0)),
            (
                "MLPRegressor",
                MLPRegressor(hidden_layer_sizes=(16,), max_iter=5000, random_state=seed),
            ),
        ]
    else:
        models = [
            (
                "MLPClassifier",
                MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=seed),
            ),
            ("LogisticRegression", LogisticRegression(max_iter=5000)),
        ]
    return [(label, make_pipeline(StandardScaler(), model)) for label, model in models]


def score(task: str, y: np.ndarray, predicted: np.ndarray) -> dict:
    y = np.asarray(y)
    if task != "regression":
        return {"accuracy": float(np.mean(predicted == y))}
    rmse = float(np.sqrt(np.mean((predicted - y) ** 2)))
    r2 = float(1 - np.sum((predicted - y) ** 2) / np.sum((y - y.mean()) ** 2))
    return {"rmse": rmse, "r2": r2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the models")
    parser.add_argument(
        "--folder",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "real-data",
        help="where the CSV files, configs and runs go",
    )
    parser.add_argument("--tables-only", action="store_true", help="penguins and cars alone")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="sklearn")  # MLP convergence notices
    args.folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, task, x_train, x_test, y_train, y_test, names in (
        () if args.tables_only else datasets(args.seed)
    ):
        write_csv(args.folder / f"{name}-train.csv", x_train, y_train, names)
        write_csv(args.folder / f"{name}-test.csv", x_test, y_test, names)
        result = nettrain(name, args.folder, args.seed)
        for note in result["notes"]:
            print(f"nettrain fit: {note}", file=sys.stderr)
        figures = (
            {"accuracy": result["accuracy"]}
            if task != "regression"
            else {"rmse": result["rmse"], "r2": result["r2"]}
        )
        shape = f"{len(x_train)}/{len(x_test)} x {x_train.shape[1]}"
        rows.append((name, task, shape, NETS[name], figures))
        for label, model in sklearn_models(task, args.seed):
            model.fit(x_train, y_train)
            rows.append((name, task, shape, label, score(task, y_test, model.predict(x_test))))
    rows += real_tables.rows(args.folder, args.seed, nettrain, score)
    print(f"seed {args.seed}: 80/20 split, standardized inputs; test set figures")
    print()
    print(
        "| data set | task | train/test x features | model | test accuracy | test RMSE | test R2 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, task, shape, label, f in rows:
        accuracy = f"{100 * f['accuracy']:.2f}%" if "accuracy" in f else ""
        rmse = f"{f['rmse']:.2f}" if "rmse" in f else ""
        r2 = f"{f['r2']:.3f}" if "r2" in f else ""
        print(f"| {name} | {task} | {shape} | {label} | {accuracy} | {rmse} | {r2} |")
    (args.folder / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

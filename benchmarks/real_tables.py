"""Everyday tables with category columns and missing fields, for benchmarks/real_data.py.

    pip install scikit-learn pandas palmerpenguins vega_datasets   # benchmark-only

Both ship their data in the package (nothing is downloaded):

- penguins (palmerpenguins): species (3 classes) from island (a category), four measurements
  (2 rows missing all four), sex (a category, 11 missing) and year; 344 rows;
- cars (vega_datasets' local cars.json): Miles_per_Gallon (regression) from cylinders,
  displacement, horsepower (6 missing), weight, acceleration, year and Origin (a category);
  Name is left out (``columns: {Name: ignore}``). The 8 rows without a Miles_per_Gallon are
  dropped (a label must be there); 398 rows.

Each is split 80/20 by the seed (stratified for penguins) and written as CSV with ``NA`` for a
missing field, as the packages give them. scikit-learn gets the same split through its usual
pipeline: numbers imputed with the mean plus a missing indicator, then standardized;
categories imputed with a constant, then one-hot (unknown values ignored).
"""

from __future__ import annotations

import numpy as np

CONFIGS = {
    "penguins": """\
seed: {seed}
data:
  train: {{path: {train}, label: species}}
  test: {test}
  validation: 0.2
  preprocess: standardize
model:
  layers:
    - {{type: dense, units: 16, activation: tanh}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train: {{epochs: 100, batch_size: 16, optimizer: {{name: adam, lr: 0.01}}}}
""",
    "cars": """\
seed: {seed}
data:
  train: {{path: {train}, label: Miles_per_Gallon, columns: {{Name: ignore}}}}
  test: {test}
  validation: 0.2
  preprocess: standardize
model:
  layers:
    - {{type: dense, units: 16, activation: relu}}
    - {{type: dense, units: 1}}
  loss: squared_error
train:
  epochs: 400
  batch_size: 16
  optimizer: {{name: adam, lr: 0.02}}
  early_stopping: {{patience: 40}}
""",
}
NETS = {"penguins": "nettrain 16 tanh, 3 softmax", "cars": "nettrain 16 relu, 1 linear"}


def tables(seed: int):
    """(name, task, train frame, test frame, label, category columns) of the two tables."""
    import palmerpenguins
    from sklearn.model_selection import train_test_split
    from vega_datasets import local_data

    penguins = palmerpenguins.load_penguins()
    cars = local_data.cars()
    cars = cars[cars["Miles_per_Gallon"].notna()].copy()
    cars["Year"] = cars["Year"].dt.year
    for name, frame, label, task, categories in (
        ("penguins", penguins, "species", "classes", ["island", "sex"]),
        ("cars", cars, "Miles_per_Gallon", "regression", ["Origin"]),
    ):
        stratify = frame[label] if task == "classes" else None
        train, test = train_test_split(frame, test_size=0.2, random_state=seed,
                                       stratify=stratify)  # fmt: skip
        yield name, task, train, test, label, categories


def sklearn_models(task: str, seed: int, numbers: list, categories: list):
    """(label, pipeline) of scikit-learn's models for a task on a table's columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if task == "regression":
        models = [
            ("Ridge", Ridge(alpha=1.0)),
            (
                "MLPRegressor",
                MLPRegressor(hidden_layer_sizes=(16,), max_iter=5000, random_state=seed),
            ),
            ("HistGradientBoosting", HistGradientBoostingRegressor(random_state=seed)),
        ]
    else:
        models = [
            ("LogisticRegression", LogisticRegression(max_iter=5000)),
            (
                "MLPClassifier",
                MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=seed),
            ),
            ("HistGradientBoosting", HistGradientBoostingClassifier(random_state=seed)),
        ]

    def columns():
        number = make_pipeline(SimpleImputer(strategy="mean", add_indicator=True),
                               StandardScaler())  # fmt: skip
        category = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore"),
        )
        return ColumnTransformer([("n", number, numbers), ("c", category, categories)])

    return [(label, make_pipeline(columns(), model)) for label, model in models]


def rows(folder, seed: int, run_nettrain, score) -> list:
    """The table rows of both sets: nettrain (``run_nettrain(name, folder, seed)``, evaluate's
    JSON) and each scikit-learn model, on the test split."""
    out = []
    for name, task, train, test, label, categories in tables(seed):
        train.to_csv(folder / f"{name}-train.csv", index=False, na_rep="NA")
        test.to_csv(folder / f"{name}-test.csv", index=False, na_rep="NA")
        result = run_nettrain(name, folder, seed)
        figures = (
            {"accuracy": result["accuracy"]}
            if task == "classes"
            else {"rmse": result["rmse"], "r2": result["r2"]}
        )
        numbers = [c for c in train.columns if c not in (label, "Name", *categories)]
        shape = f"{len(train)}/{len(test)} x {len(numbers) + len(categories)}"
        out.append((name, task, shape, NETS[name], figures))
        x_train, x_test = train[numbers + categories], test[numbers + categories]
        for model_name, model in sklearn_models(task, seed, numbers, categories):
            model.fit(x_train, train[label])
            predicted = np.asarray(model.predict(x_test))
            out.append((name, task, shape, model_name, score(task, test[label], predicted)))
    return out

"""Tables as users have them (docs/csv.md): number and category columns, missing fields, the
encoding fitted on the training split and kept in the checkpoint, raw rows at predict."""

import json

import numpy as np
import pytest

from nettrain import checkpoint, data
from nettrain.config import load_config
from nettrain.core import streams
from nettrain.core.errors import UserError
from nettrain.data import blocks
from nettrain.training.prepare import prepare
from tests.helpers import invoke

PEOPLE = """age,sex,fare,port,name,survived
22,male,7.25,S,Ann,no
38,female,71.28,C,Bob,yes
,female,7.92,S,Cid,yes
35,female,53.1,,Dee,yes
35,male,8.05,S,Eve,no
NA,male,8.46,Q,Fay,no
"""


def write(folder, name, text):
    (folder / name).write_text(text)
    return folder / name


def test_number_and_category_columns_by_hand(tmp_path):
    """age: mean of 22, 38, 35, 35 = 32.5 fills lines 4 and 7, with an indicator; sex: one-hot
    over sorted values; port: its missing field a value of its own, sorted last."""
    path = write(tmp_path, "people.csv", PEOPLE)
    ds = data.load_file({"path": str(path), "label": "survived", "columns": {"name": "ignore"}})
    enc = ds.encoding
    assert [(c.name, c.type, c.width) for c in enc.columns] == [
        ("age", "number", 2),
        ("sex", "category", 2),
        ("fare", "number", 1),
        ("port", "category", 4),
        ("name", "ignore", 0),
    ]
    assert enc.columns[0].fill == 32.5 and enc.columns[0].missing == 2
    assert enc.columns[3].values == ["C", "Q", "S", None]
    assert ds.classes == ["no", "yes"]
    np.testing.assert_array_equal(ds.y, [0, 1, 1, 1, 0, 0])
    x = np.asarray(ds.x, np.float64)
    np.testing.assert_allclose(x[:, 0], [22, 38, 32.5, 35, 35, 32.5], rtol=1e-6)
    np.testing.assert_array_equal(x[:, 1], [0, 0, 1, 0, 0, 1])  # age's indicator
    np.testing.assert_array_equal(x[:, 2:4], [[0, 1], [1, 0], [1, 0], [1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(x[3, 5:9], [0, 0, 0, 1])  # port missing
    np.testing.assert_array_equal(x[5, 5:9], [0, 1, 0, 0])  # port Q
    assert "age" in enc.table() and "category" in enc.table()


def test_declared_types_override_the_default(tmp_path):
    path = write(tmp_path, "d.csv", "y,code,v\n0,1,2\n1,2,3\n0,1,4\n")
    ds = data.load_file({"path": str(path), "columns": {"code": "category"}})
    assert [c.type for c in ds.encoding.columns] == ["category", "number"]
    assert ds.encoding.columns[0].values == ["1", "2"]
    np.testing.assert_array_equal(ds.x, [[1, 0, 2], [0, 1, 3], [1, 0, 4]])


def test_typing_the_label_column_says_how_to_name_the_label(tmp_path):
    """With several text columns and none named label/target/class/y, auto takes the first
    column; typing that column in `columns` says so and names the `label` key."""
    path = write(tmp_path, "people.csv", PEOPLE.replace("survived", "outcome"))
    with pytest.raises(UserError, match="'age' is the label column, not a feature") as info:
        data.load_file({"path": str(path), "columns": {"age": "number"}})
    assert "`label` key" in info.value.hint
    ds = data.load_file({"path": str(path), "label": "outcome", "columns": {"age": "number"}})
    assert ds.classes == ["no", "yes"]


def test_a_many_valued_column_gets_a_note_naming_it(tmp_path):
    rows = "".join(f"{i % 2},id{i},{i}\n" for i in range(150))
    path = write(tmp_path, "ids.csv", "y,ident,v\n" + rows)
    table = data.load_file(str(path)).encoding.table()
    assert "column 'ident' has 150 category values" in table
    assert "columns: {ident: ignore}" in table


def test_a_column_is_read_again_when_a_later_block_holds_other_values(tmp_path, monkeypatch):
    """Arrow types a column from its first block: a later 1.5 makes it float, a later word a
    category; a declared number column names the bad field's line."""
    monkeypatch.setattr("nettrain.data.csv.BLOCK", 64)
    body = "".join(f"{i % 2},{i},{i}\n" for i in range(40))
    path = write(tmp_path, "d.csv", "y,a,b\n" + body + "1,1.5,x\n")
    ds = data.load_file(str(path))
    assert [c.type for c in ds.encoding.columns] == ["number", "category"]
    assert ds.x[-1, 0] == 1.5
    with pytest.raises(UserError, match=r"line 42, column 2 \('b'\): 'x' is not a number"):
        data.load_file({"path": str(path), "columns": {"b": "number"}})
    assert blocks.BLOCK > 64  # the module's own value is untouched


def test_parquet_reads_as_the_same_csv(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow.csv as pacsv

    path = write(tmp_path, "people.csv", PEOPLE)
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(null_values=["", "NA"]))
    pq.write_table(table, tmp_path / "people.parquet")
    spec = {"label": "survived", "columns": {"name": "ignore"}}
    a = data.load_file({"path": str(path), **spec})
    b = data.load_file({"path": str(tmp_path / "people.parquet"), **spec})
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.encoding.to_json() == b.encoding.to_json()


# -- a new user's run, end to end ---------------------------------------------------------

CONFIG = """data:
  train: {{path: {train}, label: survived{columns}}}
  validation: 0.25
  preprocess: standardize
model:
  layers:
    - {{type: dense, units: 6, activation: tanh}}
    - {{type: dense, units: {units}, activation: {activation}}}
  loss: {loss}
train: {{epochs: 3, batch_size: 8, optimizer: {{name: adam, lr: 0.01}}}}
"""


def people(n=120, seed=0):
    """Rows like PEOPLE: text labels last, text features, empty and NA fields."""
    rng = np.random.default_rng(seed)
    lines = ["age,sex,fare,port,name,survived"]
    for i in range(n):
        sex = rng.choice(["male", "female"])
        age = "" if rng.random() < 0.2 else f"{rng.uniform(1, 80):.1f}"
        port = rng.choice(["S", "C", "Q", "", "NA"])
        label = "yes" if rng.random() < (0.8 if sex == "female" else 0.2) else "no"
        lines.append(f"{age},{sex},{rng.exponential(30):.2f},{port},p{i},{label}")
    return "\n".join(lines) + "\n"


def config(tmp_path, columns=", columns: {name: ignore}", units=1, activation="sigmoid",
           loss="cross_entropy"):  # fmt: skip
    write(tmp_path, "people.csv", people())
    text = CONFIG.format(
        train="people.csv", columns=columns, units=units, activation=activation, loss=loss
    )
    return write(tmp_path, "c.yaml", text)


def test_fit_prints_the_feature_table_and_predict_takes_raw_rows(tmp_path):
    cfg = config(tmp_path)
    result = invoke("fit", cfg, "--out", tmp_path / "run")
    assert "feature columns" in result.stderr
    assert "age" in result.stderr and "number + indicator" in result.stderr
    ckpt = tmp_path / "run" / "last.npz"
    with np.load(ckpt, allow_pickle=False) as f:  # plain arrays and a JSON text
        meta = json.loads(str(f["__meta__"]))
    assert [c["name"] for c in meta["encoding"]["columns"]][:2] == ["age", "sex"]
    # the same rows, columns shuffled, no label, a port never seen in training
    lines = [row.split(",") for row in (tmp_path / "people.csv").read_text().split()]
    order = [3, 2, 4, 0, 1]
    shuffled = [",".join(r[k] for k in order) for r in lines]
    write(tmp_path, "new.csv", "\n".join(shuffled) + "\nZ,9.5,q,30,male\n")
    full = invoke("predict", ckpt, tmp_path / "people.csv").stdout.splitlines()
    raw = invoke("predict", ckpt, tmp_path / "new.csv")
    assert raw.stdout.splitlines()[: len(full)] == full
    assert "1 rows in column 'port'" in raw.stderr
    write(tmp_path, "short.csv", "\n".join(",".join(r[k] for k in (0, 1, 3)) for r in lines))
    failed = invoke("predict", ckpt, tmp_path / "short.csv", code=2)
    assert "no column 'fare': the net was trained with it" in failed.stderr
    evaluated = invoke("evaluate", ckpt, "--data", tmp_path / "people.csv")
    assert "roc_auc" in evaluated.stdout
    summary = invoke("summary", cfg)
    assert "feature columns" in summary.stdout and "port" in summary.stdout


def test_the_encoding_is_fitted_on_the_training_split_alone(tmp_path):
    cfg, src = load_config(config(tmp_path))
    run = prepare(cfg, src)
    n = 120
    kept = np.sort(streams.holdout_order(cfg["seed"], n)[30:])
    ages = [r.split(",")[0] for r in (tmp_path / "people.csv").read_text().split()[1:]]
    train_ages = [float(ages[i]) for i in kept if ages[i]]
    age = run.train.encoding.columns[0]
    assert age.fill == pytest.approx(np.mean(train_ages), rel=1e-6)
    assert age.missing == sum(1 for i in kept if not ages[i])
    # standardize touches the number features only: one-hot features keep their 0/1
    x = run.train.inputs(slice(None), np.float64)
    onehot = ~run.train.encoding.number_mask()
    assert set(np.unique(x[:, onehot])) <= {0.0, 1.0}
    assert abs(x[:, 0].mean()) < 1e-6


def test_two_text_classes_as_two_softmax_units(tmp_path):
    cfg = config(tmp_path, units=2, activation="softmax", loss="multinomial_cross_entropy")
    invoke("fit", cfg, "--out", tmp_path / "run")
    out = invoke("predict", tmp_path / "run" / "last.npz", tmp_path / "people.csv").stdout
    assert out.splitlines()[0] == "index,prediction,class,p0,p1"


def test_integer_regression_target_and_01_labels(tmp_path):
    rng = np.random.default_rng(1)
    rows = [f"{c},{v:.2f},{int(3 * v + (c == 'b'))}" for c, v in zip(
        rng.choice(["a", "b"], 60), rng.uniform(0, 5, 60), strict=True)]  # fmt: skip
    write(tmp_path, "r.csv", "kind,v,count\n" + "\n".join(rows) + "\n")
    ds = data.load_file({"path": str(tmp_path / "r.csv"), "label": "count"})
    assert ds.has_classes and ds.classes is None  # integers: labels, as values for squared_error
    fitted = data.fit_to_net(ds, (3,), 1, "squared_error")
    assert not fitted.has_classes and fitted.y.shape == (60, 1)
    write(tmp_path, "b.csv", "v,kind,label\n1,a,0\n2,b,1\n3,a,1\n")
    ds = data.fit_to_net(data.load_file(str(tmp_path / "b.csv")), (3,), 1, "cross_entropy")
    assert ds.has_classes and list(ds.y) == [0, 1, 1]


def test_a_typo_in_columns_names_the_yaml_line_and_the_nearest_column(tmp_path):
    cfg = config(tmp_path, columns=", columns: {nmae: ignore}")
    failed = invoke("fit", cfg, "--out", tmp_path / "run", code=2)
    assert "c.yaml:2: data.train.columns.nmae: no column 'nmae'" in failed.stderr
    assert "did you mean 'name'?" in failed.stderr
    cfg = config(tmp_path, columns=", columns: {name: text}")
    failed = invoke("fit", cfg, "--out", tmp_path / "run", code=2)
    assert "data.train.columns.name: unknown value 'text'" in failed.stderr


def test_api_takes_a_dataframe_of_raw_rows(tmp_path):
    pd = pytest.importorskip("pandas")
    import nettrain

    cfg = config(tmp_path)
    invoke("fit", cfg, "--out", tmp_path / "run")
    model = nettrain.load(tmp_path / "run" / "last.npz")
    frame = pd.read_csv(tmp_path / "people.csv", keep_default_na=False, dtype=str)
    expected = model.predict(str(tmp_path / "people.csv"))
    np.testing.assert_array_equal(model.predict(frame), expected)
    reordered = frame[["fare", "name", "port", "sex", "age"]]
    np.testing.assert_array_equal(model.predict(reordered), expected)
    assert (
        model.evaluate(frame)["accuracy"]
        == model.evaluate(str(tmp_path / "people.csv"))["accuracy"]
    )


def test_checkpoint_encoding_is_checked_on_load(tmp_path):
    cfg = config(tmp_path)
    invoke("fit", cfg, "--out", tmp_path / "run")
    arrays, meta = checkpoint.load(tmp_path / "run" / "last.npz")
    meta["encoding"]["columns"][0]["type"] = "text"
    from nettrain.inference import single

    with pytest.raises(UserError, match="column encoding is damaged"):
        single.net_of(arrays, meta, "x.npz")


def test_an_empty_label_in_a_column_auto_took_says_how_to_name_the_label(tmp_path):
    """Several text columns and none named label: auto takes the first, whose empty field is then
    an empty label; the message says auto took it and the hint how to name the label."""
    path = write(tmp_path, "p.csv", "bill,island,species\n39.1,Dream,Adelie\n,Biscoe,Gentoo\n")
    with pytest.raises(UserError, match=r"line 3, column 0 \('bill'\): the label is empty "
                       r"\(label: auto took the first column") as err:  # fmt: skip
        data.load_file(str(path))
    assert "data.train.label names the label column" in err.value.hint
    with pytest.raises(UserError, match=r"line 3, column 0 \('bill'\): the label is empty$"):
        data.load_file({"path": str(path), "label": "bill"})  # named: nothing to add

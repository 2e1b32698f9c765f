"""Data files: the same data as .npz, CSV and IDX reads the same and trains the same; CSV and
image-folder options; every data error names the file (and row and column where there is one)."""

import gzip
import json
import struct
import sys

import numpy as np
import pytest
from helpers import net_arrays

from nettrain import data
from nettrain.config import load_config
from nettrain.core.errors import UserError
from nettrain.training.fit import fit
from nettrain.training.prepare import prepare

CONFIG = """
seed: 1
data:
  train: {train}
model:
  input: [1, 4, 4]
  layers:
    - {{type: conv2d, filters: 2, kernel: 3, activation: relu}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 8
  optimizer: {{name: sgd, lr: 0.01, momentum: 0.9}}
"""


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1").tobytes()


@pytest.fixture(scope="module")
def same_data(tmp_path_factory):
    """One labelled set of 4x4 uint8 images written as .npz, CSV (with header), TSV (without)
    and gzipped IDX files; the folder, x (30, 1, 4, 4) and y (30,)."""
    folder = tmp_path_factory.mktemp("formats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 1, 4, 4)).astype(np.uint8)
    y = rng.integers(0, 3, 30)
    np.savez(folder / "d.npz", images=x, labels=y)
    flat = x.reshape(30, -1)
    header = "label," + ",".join(f"p{i}" for i in range(16))
    rows = [
        ",".join(str(v) for v in (label, *pixels)) for label, pixels in zip(y, flat, strict=True)
    ]
    (folder / "d.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    tsv = [
        "\t".join(str(v) for v in (*pixels, label)) for label, pixels in zip(y, flat, strict=True)
    ]
    (folder / "d.tsv").write_text("\n".join(tsv) + "\n")
    (folder / "d-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x[:, 0])))
    (folder / "d-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
    return folder, x, y


SOURCES = {
    "npz": "{path: d.npz, x: images, y: labels}",
    "csv": "d.csv",
    "tsv": "{path: d.tsv, label: -1}",
    "idx": "{images: d-images-idx3-ubyte.gz, labels: d-labels-idx1-ubyte.gz}",
    "idx-by-name": "d-images-idx3-ubyte.gz",
}


@pytest.fixture
def config(make_config):
    """``config(folder, source, sets=()) -> (cfg, src)``: CONFIG training on ``source``, read
    as folder/cfg.yaml."""
    return lambda folder, source, sets=(): make_config(
        CONFIG.format(train=source), *sets, folder=folder
    )


@pytest.mark.parametrize("fmt", SOURCES)
def test_same_data_reads_the_same_in_every_format(same_data, fmt, config):
    folder, x, y = same_data
    cfg, _ = config(folder, SOURCES[fmt])
    ds, _ = data.load(cfg["data"])
    ds = data.fit_to_net(ds, (1, 4, 4), 3)
    assert ds.x.dtype == np.uint8  # pixels stay bytes whatever the file
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(ds.inputs(np.arange(30), np.float32), x.astype(np.float32))


def test_same_data_trains_bit_identically_in_every_format(same_data, tmp_path, config):
    folder = same_data[0]
    weights = {}
    for fmt in ("npz", "csv", "idx"):
        cfg, src = config(folder, SOURCES[fmt])
        fit(cfg, src, folder=tmp_path / fmt)
        weights[fmt] = net_arrays(tmp_path / fmt / "last.npz")
    for fmt in ("csv", "idx"):
        assert weights[fmt].keys() == weights["npz"].keys()
        for k, w in weights["npz"].items():
            assert np.array_equal(weights[fmt][k], w), (fmt, k)


# -- CSV -------------------------------------------------------------------------------------


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_label_by_name_text_classes_and_float_targets(tmp_path):
    path = write(tmp_path, "iris.csv", "a,b,species\n1.5,2,setosa\n3,4.25,virginica\n5,6,setosa\n")
    ds = data.load_file({"path": str(path), "label": "species"})
    assert ds.classes == ["setosa", "virginica"]
    np.testing.assert_array_equal(ds.y, [0, 1, 0])
    np.testing.assert_array_equal(ds.x, [[1.5, 2], [3, 4.25], [5, 6]])
    path = write(tmp_path, "r.csv", "0.5,1,2\n1.25,3,4\n")  # no header; a float label column
    ds = data.load_file(str(path))
    assert not ds.has_classes and ds.y.shape == (2, 1)
    ds = data.load_file({"path": str(path), "label": [0, 1]})  # several columns: (N, K) targets
    np.testing.assert_array_equal(ds.y, [[0.5, 1], [1.25, 3]])
    np.testing.assert_array_equal(ds.x, [[2], [4]])


@pytest.mark.parametrize(
    "header, taken",
    [
        ("y,label,a", "label"),  # label before y, wherever the columns stand
        ("label,y,a", "label"),
        ("a,y,target", "target"),  # target before class before y
        ("class,a,target", "target"),
        ("y,class,a", "class"),
        ("a,b,y", "y"),
    ],
)
def test_csv_auto_label_takes_the_most_preferred_name(tmp_path, header, taken):
    """label: auto prefers label, then target, then class, then y (columns hold 0 1 2 / 3 4 5 /
    6 7 8 in their order, so the labels read tell which column was taken)."""
    names = header.split(",")
    rows = [",".join(str(3 * c + r) for c in range(3)) for r in range(3)]
    path = write(tmp_path, "d.csv", header + "\n" + "\n".join(rows) + "\n")
    ds = data.load_file(str(path))
    column = names.index(taken)
    np.testing.assert_array_equal(ds.y.reshape(-1), [3 * column + r for r in range(3)])
    others = [c for c in range(3) if c != column]
    np.testing.assert_array_equal(ds.x, [[3 * c + r for c in others] for r in range(3)])


def test_csv_test_set_classes_follow_the_training_set(tmp_path, config):
    write(tmp_path, "train.csv", "y,a\ncat,1\ndog,2\nemu,3\n")
    write(tmp_path, "test.csv", "y,a\nemu,1\ndog,2\n")
    cfg, _ = config(tmp_path, "train.csv\n  test: test.csv")
    tr, te = data.load(cfg["data"])
    assert te.classes == tr.classes == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(te.y, [2, 1])
    write(tmp_path, "bad.csv", "y,a\nyak,1\n")
    with pytest.raises(UserError, match="bad.csv: class 'yak' is not one of"):
        data.load_file(str(tmp_path / "bad.csv"), cfg["data"], tr.classes)


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        # text in a column declared a number (undeclared, it would be a category column)
        (
            "y,a,b\n0,1,2\n1,x3,4\n",
            {"columns": {"a": "number"}},
            r"line 3, column 1 \('a'\): 'x3' is not a number",
        ),
        # an empty feature is a missing value (filled); an empty label is an error
        ("0,1,2\n1,3,\n", {"label": 2}, "line 2, column 2: the label is empty"),
        ("y,a,b\n0,1,2\n1,3\n", {}, "line 3 has 2 columns, the first has 3"),
        ("y,a\n0,1\n1,inf\n", {}, r"line 3, column 1 \('a'\): inf is not a finite number"),
        ("y,a\n", {}, "the data set is empty"),
        ("", {}, "the file is empty"),
        ("y,a\n0,1\n", {"label": "z"}, r"no column 'z' in the header \(it has: y, a\)"),
        ("0,1\n", {"label": 5}, "label column 5 is out of range: the file has 2 columns"),
        ("y,a\n0,1\n,2\n", {"label": "y"}, r"line 3, column 0 \('y'\): the label is empty"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, text, options, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(UserError, match=message) as info:
        data.load_file({"path": str(path), **options})
    assert str(path) in str(info.value)


def test_labels_out_of_range_and_feature_count_name_the_file(same_data):
    folder = same_data[0]
    ds = data.load_file(str(folder / "d.csv"))
    with pytest.raises(UserError, match=r"d.csv: class label 2 is out of range .* 0..1"):
        data.fit_to_net(ds, (16,), 2)
    with pytest.raises(UserError, match=r"d.csv: samples have shape \(16,\), the net's input"):
        data.fit_to_net(ds, (15,), 3)


# -- config forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{path: d.csv, x: images}", "cfg.yaml:4: data.train.x: unknown key 'x'"),
        ("{path: d.npz, label: 0}", "cfg.yaml:4: data.train.label: unknown key 'label'"),
        ("{path: d.csv, header: maybe}", "cfg.yaml:4: data.train.header: expected auto, true"),
        ("{path: d.csv, delimiter: ab}", "data.train.delimiter: expected auto or a single"),
        ("{path: d.csv, label: 1.5}", "data.train.label: expected a column index"),
        ("{images: d-images-idx3-ubyte.gz}", "missing required key 'data.train.labels'"),
        ("{path: nothere.npz}", "cfg.yaml:4: data.train.path: file not found"),
        ("{path: d.bin}", "cannot tell the format of 'd.bin'"),
        ("{path: d.bin, format: feather}", "unknown format 'feather'"),
        ("x.npy", "a single .npy array holds no labels"),
        ("d-labels-idx1-ubyte.gz", "an IDX images file needs its labels file"),
        ("[d.npz]", "expected a file path or a mapping with a 'path'"),
    ],
)
def test_source_mappings_are_validated_with_lines(same_data, source, message, config):
    folder = same_data[0]
    (folder / "d.bin").write_bytes(b"")
    (folder / "x.npy").write_bytes(b"")
    with pytest.raises(UserError) as info:
        config(folder, source)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nothere.csv", "file not found"),
        ("d.bin", "cannot tell the format of"),
        ("d-labels-idx1-ubyte.gz", "an IDX images file needs its labels file"),
    ],
)
def test_load_file_errors_name_the_file(same_data, name, message):
    folder = same_data[0]
    (folder / "d.bin").write_bytes(b"")
    with pytest.raises(UserError, match=message) as info:
        data.load_file(str(folder / name))
    assert str(folder / name) in str(info.value)


def test_validation_file_in_another_format(same_data, tmp_path, config):
    folder = same_data[0]
    cfg, src = config(folder, SOURCES["npz"], ["data.validation=" + str(folder / "d.csv")])
    run = prepare(cfg, src)
    assert len(run.validation) == 30 and run.validation.sample_shape == (1, 4, 4)


# -- image folders ---------------------------------------------------------------------------


def make_images(folder, sizes=None, mode="L"):
    """folder/{a,b}/{0,1}.png, 4x4; pixel values i*10 + class*100 (+channel for RGB)."""
    Image = pytest.importorskip("PIL.Image")
    for c, name in enumerate(("a", "b")):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            h, w = (sizes or {}).get((name, i), (4, 4))
            value = c * 100 + i * 10
            if mode == "L":
                pixels = np.full((h, w), value, np.uint8)
            else:
                pixels = np.stack([np.full((h, w), value + k, np.uint8) for k in range(3)], -1)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    return folder


def test_image_folder_gray_and_rgb(tmp_path):
    ds = data.load_file(str(make_images(tmp_path / "gray")))
    assert ds.x.dtype == np.uint8 and ds.x.shape == (4, 1, 4, 4)
    assert ds.classes == ["a", "b"] and ds.names == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 1])
    np.testing.assert_array_equal(ds.x[:, 0, 0, 0], [0, 10, 100, 110])
    ds = data.load_file(str(make_images(tmp_path / "rgb", mode="RGB")))
    assert ds.x.shape == (4, 3, 4, 4)
    np.testing.assert_array_equal(ds.x[3, :, 2, 2], [110, 111, 112])
    ds = data.load_file({"path": str(tmp_path / "rgb"), "color": "gray"})
    assert ds.x.shape == (4, 1, 4, 4)


def test_image_sizes_are_checked_or_resized(tmp_path):
    folder = make_images(tmp_path / "img", sizes={("b", 1): (5, 4)})
    with pytest.raises(UserError, match=r"1.png: the image is 5x4, the first one .* is 4x4"):
        data.load_file(str(folder))
    ds = data.load_file({"path": str(folder), "size": [3, 2]})
    assert ds.x.shape == (4, 1, 3, 2)


def test_images_without_pillow_name_the_extra(tmp_path, monkeypatch):
    make_images(tmp_path / "img")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UserError, match="needs Pillow") as info:
        data.load_file(str(tmp_path / "img"))
    assert "pip install 'nettrain[images]'" in info.value.hint


def test_image_folder_config_trains_and_predicts_with_file_names(tmp_path, cli_call):
    make_images(tmp_path / "img")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG.format(train="{path: img, size: [4, 4]}"))
    cli_call("fit", cfg_path, "--out", tmp_path / "run", "--quiet")
    ckpt = tmp_path / "run" / "last.npz"
    result = cli_call("predict", ckpt, tmp_path / "img")
    lines = result.stdout.splitlines()
    assert lines[0] == "index,file,prediction,class,p0,p1,p2"
    assert lines[1].startswith("0,a/0.png,") and lines[4].startswith("3,b/1.png,")
    assert lines[1].split(",")[3] in ("a", "b")
    result = cli_call("predict", ckpt, tmp_path / "img", "--format", "jsonl")
    record = json.loads(result.stdout.splitlines()[1])  # jsonl: no header line
    assert list(record)[:4] == ["index", "file", "prediction", "class"]
    assert record["file"] == "a/1.png" and record["class"] in ("a", "b")
    result = cli_call("predict", ckpt, tmp_path / "img" / "b" / "0.png")
    assert result.stdout.splitlines()[1].startswith("0,0.png,")
    evaluated = cli_call("evaluate", ckpt, "--data", tmp_path / "img")
    assert evaluated.exit_code == 0 and "samples   4" in evaluated.stdout


# -- predict inputs --------------------------------------------------------------------------


def test_predict_reads_every_format_alike(same_data, tmp_path, config):
    from nettrain.inference import single

    folder, x, _ = same_data
    cfg, src = config(folder, SOURCES["npz"], ["train.epochs=1"])
    fit(cfg, src, folder=tmp_path / "run")
    net, meta = single.load_net(tmp_path / "run" / "last.npz")
    np.save(tmp_path / "x.npy", x)
    flat = x.reshape(30, -1)
    np.savetxt(tmp_path / "x.csv", flat, fmt="%d", delimiter=",")  # features only
    inputs = {
        "npz (training data's array name)": folder / "d.npz",
        "npy": tmp_path / "x.npy",
        "csv with the label column": folder / "d.csv",
        "csv without labels": tmp_path / "x.csv",
        "idx images": folder / "d-images-idx3-ubyte.gz",
    }
    expected = single.predict(net, x)
    for what, path in inputs.items():
        ds = single.read_inputs(str(path), net, meta)
        np.testing.assert_array_equal(single.predict(net, ds), expected, err_msg=what)


def test_load_config_keeps_a_plain_path_and_resolves_mappings(same_data):
    folder = same_data[0]
    path = folder / "c.yaml"
    path.write_text(CONFIG.format(train="{path: d.npz, x: images, y: labels}"))
    cfg, _ = load_config(path)
    assert cfg["data"]["train"] == {
        "format": "npz",
        "path": str(folder / "d.npz"),
        "x": "images",
        "y": "labels",
    }


def test_integer_inputs_get_the_scaling_of_a_builtin_training_set(same_data, config):
    from nettrain.inference import single
    from nettrain.net.network import build_network

    folder, x, y = same_data
    cfg, _ = config(folder, SOURCES["npz"])
    net = build_network(cfg["model"], np.float32, (1, 4, 4))
    meta = {"input_scale": 1 / 255, "data": cfg["data"], "preprocess_stats": {}}
    for ds in (data.checked(x, y, "ints"), data.checked(x / 255, y, "floats")):
        seen = single.preprocessed(ds, net, meta).inputs(slice(None), np.float32)
        np.testing.assert_allclose(seen, x / 255, rtol=1e-6)

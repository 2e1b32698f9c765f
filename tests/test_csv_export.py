"""ONNX export of a net trained on a table: the graph takes the encoded features, whose
encoding the model's metadata holds (docs/csv.md); encoding raw rows from that metadata alone
and running onnxruntime gives ``nettrain predict``'s outputs on the raw rows."""

import csv
import io
import json

import numpy as np
import pytest

from tests.helpers import invoke
from tests.test_csv_columns import config

MISSING = {"", "NA", "N/A", "NaN", "nan", "null", "None", "?"}


def encode(rows: list[dict], columns: list[dict]) -> np.ndarray:
    """Raw rows (header name -> text) encoded as docs/csv.md says, from the JSON alone."""
    out = []
    for row in rows:
        features = []
        for col in columns:
            text = row.get(col["name"], "").strip()
            missing = text in MISSING
            if col["type"] == "number":
                features.append(col["fill"] if missing else float(text))
                if col["indicator"]:
                    features.append(1.0 if missing else 0.0)
            elif col["type"] == "category":
                value = None if missing else text
                features += [1.0 if value == v else 0.0 for v in col["values"]]
        out.append(features)
    return np.array(out, np.float32)


def test_onnx_on_encoded_rows_gives_predict_on_raw_rows(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    cfg = config(tmp_path)
    invoke("fit", cfg, "--out", tmp_path / "run")
    ckpt = tmp_path / "run" / "last.npz"
    invoke("export", ckpt, "--format", "onnx", "--output", tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    props = {p.key: p.value for p in model.metadata_props}
    columns = json.loads(props["nettrain_columns"])["columns"]
    names = json.loads(props["nettrain_features"])
    assert names[:3] == ["age", "age=(missing)", "sex=female"]
    text = (tmp_path / "people.csv").read_text() + "31,male,12.5,Z,new,no\n"  # Z: unseen
    (tmp_path / "raw.csv").write_text(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    x = encode(rows, columns)
    assert x.shape[1] == len(names)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    out = invoke("predict", ckpt, tmp_path / "raw.csv", "--format", "npy", "--output",
                 tmp_path / "p.npy")  # fmt: skip
    assert "1 rows in column 'port'" in out.stderr
    np.testing.assert_allclose(got, np.load(tmp_path / "p.npy"), rtol=1e-5, atol=1e-6)

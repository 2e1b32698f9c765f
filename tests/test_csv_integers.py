"""The fast path for tables of small whole numbers (data/integers.py) gives the arrays arrow's
reader gives, or hands the file to it: every table here is read both ways and compared."""

import re

import numpy as np
import pytest

from nettrain import data
from nettrain.core.errors import UserError
from nettrain.data import csv as csv_module
from nettrain.data import integers


def read_both(path, monkeypatch, parts=1, piece=None, **spec):
    """(the Dataset read with the fast path allowed, whether it took the file, the Dataset read
    by arrow); the types are sniffed from the first rows alone, so that a late field is met by
    the reader. Where arrow's read is an error, the other must be the same error."""
    monkeypatch.setattr(csv_module, "BLOCK", 64)
    monkeypatch.setattr(csv_module, "LINES", 0)
    monkeypatch.setattr(csv_module, "SPLIT", 1)
    monkeypatch.setattr(csv_module.threads, "active_threads", lambda: parts)
    if piece is not None:
        monkeypatch.setattr(integers, "PIECE", piece)
    fast, taken = integers.read, []

    def spied(*args):
        raw = fast(*args)
        taken.append(raw is not None)
        return raw

    spec = {"path": str(path), **spec}
    monkeypatch.setattr(integers, "read", lambda *args: None)
    try:
        arrow = data.load_file(spec)
    except UserError as exc:
        monkeypatch.setattr(integers, "read", spied)
        with pytest.raises(UserError, match=re.escape(str(exc))):
            data.load_file(spec)
        raise
    monkeypatch.setattr(integers, "read", spied)
    return data.load_file(spec), taken == [True], arrow


def same(a, b) -> None:
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.dtype == b.x.dtype and a.y.dtype == b.y.dtype
    assert a.encoding.to_json() == b.encoding.to_json()


def pixels(rows=120, cols=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (rows, cols)), rng.integers(0, 10, rows)


def write(path, lines, newline="\n", end=True) -> None:
    path.write_bytes((newline.join(lines) + (newline if end else "")).encode())


@pytest.mark.parametrize("parts", [1, 2, 5])
@pytest.mark.parametrize(
    "layout", ["label-first", "label-last", "no-header", "crlf", "blank-lines", "no-end", "piece"]
)
def test_integer_tables_read_as_arrow_reads_them(tmp_path, monkeypatch, parts, layout):
    x, y = pixels()
    head = "label," + ",".join(f"p{i}" for i in range(x.shape[1]))
    lines = [head] + [",".join(map(str, [yy, *xx])) for yy, xx in zip(y, x, strict=True)]
    spec = {}
    if layout == "label-last":
        lines = [",".join(line.split(",")[1:] + line.split(",")[:1]) for line in lines]
    if layout == "no-header":
        lines, spec = lines[1:], {"header": False, "label": 0}
    if layout == "blank-lines":
        lines = [line + ("\n\n" if i % 17 == 4 else "") for i, line in enumerate(lines)]
    path = tmp_path / "px.csv"
    write(path, lines, "\r\n" if layout in ("crlf", "piece") else "\n", end=layout != "no-end")
    piece = 48 if layout == "piece" else None  # shorter than a row: the buffer grows
    fast, taken, arrow = read_both(path, monkeypatch, parts, piece, **spec)
    assert taken
    same(fast, arrow)
    np.testing.assert_array_equal(fast.x, x)
    assert fast.x.dtype == np.uint8


def test_labels_with_signs_and_leading_zeros_and_skipped_text_columns(tmp_path, monkeypatch):
    """A label's minus sign and leading zeros; an ignored column of any text (no quote)."""
    lines = ["y,a,note,b"] + [f"{-i * 7 if i % 2 else i},{i:03d},t {i}!,{i % 9}" for i in range(50)]
    path = tmp_path / "s.csv"
    write(path, lines)
    fast, taken, arrow = read_both(path, monkeypatch, 2, label=["y"], columns={"note": "ignore"})
    assert taken
    same(fast, arrow)
    assert fast.y.min() == -343 and fast.x[7].tolist() == [7, 7]


@pytest.mark.parametrize(
    "late",
    ["", "256", "1.5", " 5", "+5", "-5", '"5"', "5 ", "0x5", "5,", "١"],
    ids=[
        "empty",
        "256",
        "1.5",
        "space",
        "plus",
        "minus",
        "quoted",
        "trailing-space",
        "hex",
        "extra-field",
        "arabic-digit",
    ],  # fmt: skip
)
@pytest.mark.parametrize("parts", [1, 3])
def test_a_field_the_fast_path_does_not_take_hands_the_file_to_arrow(tmp_path, monkeypatch,
                                                                     late, parts):  # fmt: skip
    """A late field that is not plain digits 0..255: the file is read by arrow, as before (widened,
    filled, or an error naming its line)."""
    lines = ["y,a,b"] + [f"{i % 2},{i},{i % 7}" for i in range(60)]
    lines[50] = f"1,{late},3"
    path = tmp_path / "late.csv"
    write(path, lines)
    try:
        fast, taken, arrow = read_both(path, monkeypatch, parts)
    except UserError as exc:  # arrow's reader names the line, the same error both ways
        assert "line 51" in str(exc)
        return
    assert not taken
    same(fast, arrow)


@pytest.mark.parametrize(
    "label",
    ["1e3", "9999999999999999999", "99999999999999999999", "cat", "-"],
    ids=["exponent", "19-digits", "20-digits", "text", "sign"],
)
def test_labels_the_fast_path_does_not_take(tmp_path, monkeypatch, label):
    lines = ["y,a"] + [f"{i % 3},{i}" for i in range(40)]
    lines[30] = f"{label},5"
    path = tmp_path / "l.csv"
    write(path, lines)
    try:
        fast, taken, arrow = read_both(path, monkeypatch, label=["y"])
    except UserError as exc:  # the same error both ways
        assert "line 31" in str(exc)
        return
    assert not taken
    same(fast, arrow)


@pytest.mark.parametrize("row", ["1,2", "1,2,3,4", "1,2\r3,4"], ids=["short", "long", "lone-cr"])
def test_rows_of_another_length_or_lone_carriage_returns_go_to_arrow(tmp_path, monkeypatch, row):
    lines = ["y,a,b"] + [f"{i % 2},{i},{i}" for i in range(40)]
    lines[33] = row
    path = tmp_path / "r.csv"
    write(path, lines)
    try:
        fast, taken, arrow = read_both(path, monkeypatch, 2)
    except UserError as exc:
        assert "line 34" in str(exc)
        return
    assert not taken
    same(fast, arrow)


def test_a_quote_in_a_skipped_column_goes_to_arrow(tmp_path, monkeypatch):
    """A quoted field may hold a line end (here one that looks like the end of a row)."""
    lines = ["y,a,note"] + [f"{i % 2},{i},n{i}" for i in range(40)]
    lines[20] = '1,2,"a\n5,6,b"'
    path = tmp_path / "q.csv"
    write(path, lines)
    fast, taken, arrow = read_both(path, monkeypatch, columns={"note": "ignore"})
    assert not taken
    same(fast, arrow)


@pytest.mark.parametrize("header", [True, False])
def test_a_file_whose_lines_end_in_lone_carriage_returns_goes_to_arrow(tmp_path, monkeypatch,
                                                                       header):  # fmt: skip
    """Old Mac line ends throughout: no line feed at all, the header's end included."""
    lines = ["y,a,b"] * header + [f"{i % 2},{i % 200},{i * 7 % 250}" for i in range(300)]
    path = tmp_path / "cr.csv"
    write(path, lines, "\r")
    spec = {} if header else {"header": False, "label": 0}
    fast, taken, arrow = read_both(path, monkeypatch, 2, **spec)
    assert not taken and len(fast.x) == 300
    same(fast, arrow)

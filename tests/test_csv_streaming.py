"""The CSV reader streams the file (docs/csv.md): arrow parses one block of ``csv.READ`` bytes at
a time, whose columns are copied into the final arrays before the next block is parsed. These
tests read with blocks of a few rows, so that what each checks happens in a later block than the
first, and compare with a read of the whole file in one block."""

import gzip
import re

import numpy as np
import pyarrow as pa
import pytest

from nettrain import data
from nettrain.core.errors import UserError
from nettrain.data import csv as csv_module
from nettrain.data.tables import read_features

SMALL = 64  # bytes: a few rows of the files below


def load(path, monkeypatch, block=SMALL, parts=1, **spec):
    """The Dataset of ``path`` read in blocks of ``block`` bytes (types sniffed from the first
    SMALL bytes either way), cut into ``parts`` parts read side by side where it can be, and the
    number of rows of each block read ({part: sizes} where parts > 1)."""
    monkeypatch.setattr(csv_module, "READ", block)
    monkeypatch.setattr(csv_module, "BLOCK", SMALL)
    monkeypatch.setattr(csv_module, "LINES", 0)
    monkeypatch.setattr(csv_module, "SPLIT", 1)
    monkeypatch.setattr(csv_module.threads, "active_threads", lambda: parts)
    sizes = []
    split = {}
    read = csv_module.Table.read

    def counted(self, include, types, part=0):
        for batch in read(self, include, types, part):
            sizes.append(batch.num_rows)
            split.setdefault(part, []).append(batch.num_rows)
            yield batch

    monkeypatch.setattr(csv_module.Table, "read", counted)
    ds = data.load_file({"path": str(path), **spec})
    return ds, (split if parts > 1 else sizes)


def same(a, b) -> None:
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.dtype == b.x.dtype
    assert a.encoding.to_json() == b.encoding.to_json()


def widening_rows(n=60, late=45):
    """y; a: integers, 1.5 on row ``late``; b: pixels 0..255, 300 there; c: numbers, a word
    there; d: pixels, a missing field there."""
    lines = ["y,a,b,c,d"]
    for i in range(n):
        a, b, c, d = i, i % 256, i, i % 7
        if i == late:
            a, b, c, d = 1.5, 300, "x", ""
        lines.append(f"{i % 2},{a},{b},{c},{d}")
    return "\n".join(lines) + "\n"


def test_later_blocks_widen_the_sniffed_types(tmp_path, monkeypatch):
    """The first block reads a and b as uint8 or float32, c as numbers, d as uint8: a later
    1.5, 300, word and missing field widen them as a read of the whole file does."""
    path = tmp_path / "w.csv"
    path.write_text(widening_rows())
    streamed, sizes = load(path, monkeypatch)
    # blocks of a few rows; the file read again for each widening, which came in a later block
    assert max(sizes) < 10 and sum(sizes) > 60
    whole, sizes = load(path, monkeypatch, block=1 << 20)
    assert set(sizes) == {60}  # one block a pass
    same(streamed, whole)
    enc = streamed.encoding
    assert [(c.name, c.type, c.indicator) for c in enc.columns] == [
        ("a", "number", False),
        ("b", "number", False),
        ("c", "category", False),
        ("d", "number", True),
    ]
    assert streamed.x.dtype == np.float32
    row = streamed.x[45]
    assert row[0] == 1.5 and row[1] == 300
    assert row[-2:].tolist() == [pytest.approx(enc.columns[3].fill), 1.0]  # d filled, flagged
    assert streamed.x[44, 0] == 44 and streamed.x[46, 1] == 46


def test_a_gzipped_file_of_unknown_length_reads_the_same(tmp_path, monkeypatch):
    """A .gz file's rows are not counted beforehand: its arrays grow as its blocks come (from
    room for 1024 rows)."""
    text = widening_rows(n=3000, late=2900)
    plain, gz = tmp_path / "w.csv", tmp_path / "w.csv.gz"
    plain.write_text(text)
    with gzip.open(gz, "wt") as f:
        f.write(text)
    streamed, sizes = load(gz, monkeypatch, block=1024)
    assert len(sizes) > 20 and len(streamed.x) == 3000
    same(streamed, load(plain, monkeypatch, block=1 << 20)[0])


@pytest.mark.parametrize(
    "late, options, message",
    [
        ("1,2,x", {"columns": {"b": "number"}}, "line 42, column 2 ('b'): 'x' is not a number"),
        ("1,2", {}, "line 42 has 2 columns, the first has 3"),
        ("1,inf,3", {}, "line 42, column 1 ('a'): inf is not a finite number"),
        (",2,3", {"label": "y"}, "line 42, column 0 ('y'): the label is empty"),
    ],
)
@pytest.mark.parametrize("parts", [1, 3])
def test_a_bad_field_in_a_late_block_is_named_with_its_line(tmp_path, monkeypatch, late,
                                                            options, message, parts):  # fmt: skip
    body = "".join(f"{i % 2},{i},{i}\n" for i in range(40))
    path = tmp_path / "bad.csv"
    path.write_text("y,a,b\n" + body + late + "\n" + "0,1,2\n" * 10)
    with pytest.raises(UserError, match=re.escape(message)):
        load(path, monkeypatch, parts=parts, **options)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("last", [True, False], ids=["newline-at-end", "no-newline-at-end"])
def test_line_endings_and_the_last_line(tmp_path, monkeypatch, newline, last):
    """CRLF or LF, a newline after the last row or none: the same rows, no '\\r' in a value."""
    rows = [f"{i % 2},{i},{'ab'[i % 2]}" for i in range(50)]
    path = tmp_path / "e.csv"
    path.write_bytes((newline.join(["y,a,c", *rows]) + (newline if last else "")).encode())
    streamed, sizes = load(path, monkeypatch)
    assert len(sizes) > 5 and len(streamed.x) == 50
    reference = tmp_path / "r.csv"
    reference.write_text("\n".join(["y,a,c", *rows]) + "\n")
    same(streamed, load(reference, monkeypatch, block=1 << 20)[0])
    assert streamed.encoding.columns[1].values == ["a", "b"]
    assert streamed.x[-1].tolist() == [49, 0, 1]


def test_quoted_fields_across_blocks(tmp_path, monkeypatch):
    """Quoted fields with the delimiter and doubled quotes inside, in every block."""
    names = ['"Smith, Ann"', '"Lee, ""Bo"""', "Kim"]
    rows = [f"{i % 2},{names[i % 3]},{i}" for i in range(60)]
    path = tmp_path / "q.csv"
    path.write_text("\n".join(["y,name,v", *rows]) + "\n")
    streamed, sizes = load(path, monkeypatch)
    assert len(sizes) > 5
    same(streamed, load(path, monkeypatch, block=1 << 20)[0])
    assert streamed.encoding.columns[0].values == ["Kim", 'Lee, "Bo"', "Smith, Ann"]


def test_the_whole_file_is_never_in_arrow_memory(tmp_path, monkeypatch):
    """Arrow's memory peaks at a few blocks' worth, under the float32 features it reads (a read
    of the whole file at once holds its table: some 3.5 times them)."""
    rng = np.random.default_rng(0)
    n = 50_000
    table = np.concatenate([(np.arange(n) % 2)[:, None], rng.standard_normal((n, 10))], axis=1)
    path = tmp_path / "n.csv"
    head = "y," + ",".join(f"a{i}" for i in range(10))
    np.savetxt(path, table, fmt="%.4g", delimiter=",", header=head, comments="")
    pool, default = pa.proxy_memory_pool(pa.default_memory_pool()), pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        ds, sizes = load(path, monkeypatch, block=1 << 14)
    finally:
        pa.set_memory_pool(default)
    assert ds.x.shape == (n, 10) and len(sizes) > 100
    features = ds.x.nbytes
    assert pool.max_memory() < features


def test_a_parquet_file_read_in_small_batches_reads_the_same(tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow.csv as pacsv

    path = tmp_path / "w.csv"
    path.write_text(widening_rows().replace(",x,", ",7,").replace(",300,", ",3,"))
    convert = pacsv.ConvertOptions(null_values=[""])
    pq.write_table(pacsv.read_csv(path, convert_options=convert), tmp_path / "w.parquet")
    whole = data.load_file(str(tmp_path / "w.parquet"))
    monkeypatch.setattr("nettrain.data.parquet.ROWS", 7)
    same(data.load_file(str(tmp_path / "w.parquet")), whole)
    np.testing.assert_array_equal(whole.x[:, 0], load(path, monkeypatch)[0].x[:, 0])


def test_pixels_are_the_features_as_read_in_the_file_order(tmp_path, monkeypatch):
    """A table of uint8 number columns is encoded as it was read (no copy): the same as the
    general encoding, at predict with the columns in another order too, and not where the
    encoding has an indicator feature the file's columns lack."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 3))
    head = "y,p0,p1,p2"
    rows = [f"{i % 2}," + ",".join(map(str, p)) for i, p in enumerate(pixels)]
    path = tmp_path / "px.csv"
    path.write_text("\n".join([head, *rows]) + "\n")
    ds = data.load_file(str(path))
    assert ds.x.dtype == np.uint8
    np.testing.assert_array_equal(ds.x, pixels)
    monkeypatch.setattr("nettrain.data.columns._as_read", lambda cols: None)
    same(ds, data.load_file(str(path)))  # the general encoding gives the same
    monkeypatch.undo()
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(["p2,y,p0,p1", *[f"{p[2]},0,{p[0]},{p[1]}" for p in pixels]]))
    x, unseen = read_features(shuffled, ds.encoding, 3)
    np.testing.assert_array_equal(x, pixels)
    assert not unseen
    # trained where p1 had a missing field (an indicator feature): pixels alone are not enough
    path.write_text("\n".join([head, *rows, "1,5,,7"]) + "\n")
    enc = data.load_file(str(path)).encoding
    assert enc.width == 4
    x, _ = read_features(shuffled, enc, 4)
    np.testing.assert_array_equal(x, np.insert(pixels, 2, 0, axis=1))


def test_rows_longer_than_a_block_are_read(tmp_path):
    """A table of 40,000 columns: its rows (240 KB) and header (270 KB) are longer than a block
    of READ bytes; the blocks are made long enough for them."""
    n = 40_000
    rows = [[7] * n + [0], [9] * n + [1], [250] * n + [1]]
    path = tmp_path / "wide.csv"
    lines = [",".join(f"c{i}" for i in range(n)) + ",label"]
    lines += [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    assert len(lines[0]) > csv_module.READ
    ds = data.load_file(str(path))
    np.testing.assert_array_equal(ds.x, np.array(rows, np.uint8)[:, :n])
    np.testing.assert_array_equal(ds.y, [0, 1, 1])


def test_a_late_wider_value_is_read_again_with_arrow_on_one_thread(tmp_path, monkeypatch):
    """On one CPU arrow names the row in its conversion error ('Row #42: '); the column is still
    widened and read again, as with several."""
    path = tmp_path / "late.csv"
    path.write_text("y,a\n" + "".join(f"{i % 2},{i}\n" for i in range(40)) + "1,1.5\n")
    monkeypatch.setattr(csv_module, "BLOCK", SMALL)  # types from the first rows: uint8
    cpus = pa.cpu_count()
    pa.set_cpu_count(1)
    try:
        ds = data.load_file(str(path))
    finally:
        pa.set_cpu_count(cpus)
    assert ds.x.dtype == np.float32 and ds.x[-1, 0] == 1.5


def mixed_rows(n=90):
    """y (text classes); a: integers with a late 1.5 (a widening), b: pixels with missing fields
    in the second half, c: categories first met in every third of the file, some missing."""
    lines = ["y,a,b,c"]
    for i in range(n):
        a = 1.5 if i == 80 else i
        b = "" if i > n // 2 and i % 9 == 0 else i % 256
        c = "" if i % 11 == 5 else f"k{i // 10}"
        lines.append(f"{['no', 'yes'][i % 2]},{a},{b},{c}")
    return lines


@pytest.mark.parametrize("parts", [2, 3, 7])
@pytest.mark.parametrize(
    "layout", ["plain", "blank-lines", "crlf", "no-newline-at-end", "no-header", "lone-cr"]
)
def test_a_file_read_in_parts_side_by_side_reads_as_one(tmp_path, monkeypatch, parts, layout):
    """A file cut at line ends into parts read on threads gives what one reader gives: rows in
    file order, category values numbered in the order first met, widenings met in a late part,
    blank lines (a gap the join closes), line ends of every kind."""
    lines = mixed_rows()
    if layout == "no-header":
        lines = lines[1:]
    if layout == "blank-lines":
        lines = [line + ("\n" if i % 13 == 3 else "") for i, line in enumerate(lines)]
    newline = "\r\n" if layout == "crlf" else "\n"
    text = newline.join(lines) + ("" if layout == "no-newline-at-end" else newline)
    if layout == "lone-cr":  # arrow ends a line at a lone CR too: more rows than line feeds
        text = text[:200].replace("\n", "\r") + text[200:]
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode())
    spec = {"header": False, "label": 0} if layout == "no-header" else {}
    split, sizes = load(path, monkeypatch, parts=parts, **spec)
    assert sorted(sizes) == list(range(parts))  # read in as many parts, each in blocks
    one, _ = load(path, monkeypatch, block=1 << 20, **spec)
    same(split, one)
    assert split.classes == one.classes == ["no", "yes"] and len(split.x) == 90


def test_a_file_with_quotes_is_read_as_one_part(tmp_path, monkeypatch):
    """A quoted field may hold a line end, so a file with a quote character is not cut."""
    rows = [f'{i % 2},"v{i}",{i}' for i in range(60)]
    path = tmp_path / "q.csv"
    path.write_text("\n".join(["y,name,v", *rows]) + "\n")
    split, sizes = load(path, monkeypatch, parts=3)
    assert list(sizes) == [0]
    same(split, load(path, monkeypatch, block=1 << 20)[0])

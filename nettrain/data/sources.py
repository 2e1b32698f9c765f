"""Data files: which format a path is, the options of each format, and reading a labelled set.

A source (``data.train``, ``data.test``, ``data.validation``) is a path, its format told by its
name, or a mapping whose keys are the options of one format (``SOURCES``); ``format`` picks it
where the name does not tell:

- ``npz``: ``{path, x: 'x', y: 'y'}``, the arrays' names in the file;
- ``csv`` (.csv, .tsv, optionally .gz): ``{path, label: auto, header: auto, delimiter: auto,
  columns: {}}``; ``parquet`` (.parquet): ``{path, label: auto, columns: {}}`` (docs/csv.md);
- ``idx`` (MNIST's format, raw or .gz): ``{images, labels}``; a bare path to an images file
  takes the labels file MNIST's naming pairs with it (``*-images-idx3*`` -> ``*-labels-idx1*``);
- ``images`` (a folder, one sub-folder per class): ``{path, size: null, color: auto}``.

A resolved config keeps a path as a path; ``resolve`` gives the full mapping of either form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.options import Opt, _shown, check_named
from nettrain.data.checks import checked
from nettrain.data.idx import labels_beside, read_idx
from nettrain.data.images import IMAGE_SUFFIXES, read_folder
from nettrain.data.npz import npz_names, read_npy, read_npz
from nettrain.data.table_options import COLUMNS, Column, Delimiter, Header
from nettrain.data.tables import open_table, read_labelled

# the label column of a table (csv and parquet alike)
LABEL = Column(
    default="auto",
    doc="the label column: 0-based index (-1: the last), header name or a list (K float "
    "targets); auto: a column named label, target, class or y, else the only text "
    "column, else the first",
)

SOURCES = {
    "npz": {
        "path": Opt("path", doc="the .npz file; arrays stored uncompressed are memory-mapped"),
        "x": Opt("str", "x", doc="name of the inputs array (N, ...)"),
        "y": Opt("str", "y", doc="name of the labels (N,) or targets (N, K) array"),
    },
    "npy": {
        "x": Opt("path", doc="the .npy file of the inputs (N, ...), memory-mapped"),
        "y": Opt("path", doc="the .npy file of the labels (N,) or targets (N, K)"),
    },
    "csv": {
        "path": Opt("path", doc="the .csv or .tsv file (optionally .gz)"),
        "label": LABEL,
        "header": Header(
            default="auto",
            doc="whether the first line is a header; auto: when a feature field of it is no number",
        ),
        "delimiter": Delimiter(
            default="auto",
            doc="the column separator; auto: tab for .tsv, else the most frequent of , ; tab in "
            "the first line",
        ),
        "columns": COLUMNS,
    },
    "parquet": {
        "path": Opt("path", doc="the .parquet file"),
        "label": LABEL,
        "columns": COLUMNS,
    },
    "idx": {
        "images": Opt("path", doc="IDX file of the samples; (N, H, W) images become (N, 1, H, W)"),
        "labels": Opt("path", doc="IDX file of the labels (N,); a bare path: MNIST's pair of it"),
    },
    "images": {
        "path": Opt("path", doc="one sub-folder of PNG/JPEG/BMP images per class (needs Pillow)"),
        "size": Opt("size", None, doc="[h, w] to resize to (bilinear); null: all as the first"),
        "color": Opt(
            "choice",
            "auto",
            choices=("auto", "gray", "rgb"),
            doc="1 channel (gray) or 3 (rgb); auto: gray when every image is gray",
        ),
    },
}


def format_of(path) -> str | None:
    """The format a path's name (or being a folder) tells: a SOURCES name, 'npy' or 'image'."""
    path = Path(path)
    if path.is_dir():
        return "images"
    name = path.name.lower().removesuffix(".gz")
    for suffixes, fmt in (
        ((".npz",), "npz"),
        ((".npy",), "npy"),
        ((".csv", ".tsv"), "csv"),
        ((".parquet",), "parquet"),
        (IMAGE_SUFFIXES, "image"),
    ):
        if name.endswith(suffixes):
            return fmt
    if "idx" in name or name.endswith("ubyte"):
        return "idx"
    return None


# -- validation (called by the config schema) ------------------------------------------------


def check_source(value, src, path):
    """A data.train/test/validation value: the absolute path, or the resolved mapping."""
    if isinstance(value, str):
        file = Opt("path").check(value, src, path)
        if src.check_files:
            _must_exist(file, src, path)
            _labelled_format(file, format_of(file), src, path)
        return file
    if not isinstance(value, dict):
        raise UserError(
            src.where(path), f"expected a file path or a mapping with a 'path', got {_shown(value)}"
        )
    fmt = value.get("format")
    if fmt is None and "images" in value:
        fmt = "idx"
    elif fmt is None and "path" not in value and str(value.get("x", "")).endswith(".npy"):
        fmt = "npy"
    elif fmt is None:
        if not isinstance(value.get("path"), str):
            raise UserError(
                src.where(path),
                "no 'path' (or 'images' and 'labels' for IDX files)",
            )
        fmt = format_of(Opt("path").check(value["path"], src, (*path, "path")))
        if fmt is None:
            raise UserError(
                src.where((*path, "path")),
                f"cannot tell the format of '{value['path']}' from its name",
                f"add format: one of {', '.join(SOURCES)}",
            )
    spec = check_named({**value, "format": fmt}, SOURCES, src, path, "format")
    for key in ("path", "images", "labels", *(("x", "y") if fmt == "npy" else ())):
        if key in spec:
            _must_exist(spec[key], src, (*path, key), folder=fmt == "images" and key == "path")
    if spec.get("columns") and src.check_files:
        _known_columns(spec, src, path)
    return spec


def _known_columns(spec: dict, src, path) -> None:
    """Every name of ``columns:`` is a column of the file's header (else: the YAML line, the
    names the file has, the nearest one)."""
    from nettrain.core.errors import did_you_mean

    table = open_table(spec["path"], True, spec.get("delimiter", "auto"))
    names = [n.strip() for n in table.first]
    for name in spec["columns"]:
        if name not in names:
            raise UserError(
                src.where((*path, "columns", name)),
                f"no column '{name}' in the header of {spec['path']}: {did_you_mean(name, names)}",
            )


def _must_exist(file: str, src, path, folder: bool = False) -> None:
    if not src.check_files:
        return
    if not (Path(file).is_dir() if folder else Path(file).exists()):
        raise UserError(src.where(path), f"{'folder' if folder else 'file'} not found: {file}")


def _labelled_format(file: str, fmt: str | None, src, path) -> None:
    """Refuse a path that cannot be read as labelled data (``src`` None: name the file)."""
    where = src.where(path) if src is not None else file
    if fmt is None:
        raise UserError(
            where,
            f"cannot tell the format of '{file}' from its name",
            "name it .npz, .csv, .tsv or *idx*, or write {path: FILE, format: npz|csv|idx|images}",
        )
    if fmt in ("npy", "image"):
        raise UserError(
            where,
            f"a single {'.npy array' if fmt == 'npy' else 'image'} holds no labels",
            "give an .npz with arrays x and y, a CSV, IDX images and labels, or a folder of "
            "class folders",
        )
    if fmt == "idx" and labels_beside(file) is None:
        raise UserError(
            where,
            "an IDX images file needs its labels file",
            "write {images: IMAGES-FILE, labels: LABELS-FILE}",
        )


def resolve(spec) -> dict:
    """The full mapping of a source: a bare path gets its format and every default."""
    if isinstance(spec, Path):
        spec = str(spec)
    if isinstance(spec, str):
        fmt = format_of(spec)
        spec = {"images": spec, "labels": labels_beside(spec)} if fmt == "idx" else {"path": spec}
    else:
        fmt = spec.get("format") or (
            "idx" if "images" in spec else "npy" if "path" not in spec else format_of(spec["path"])
        )
    defaults = {k: o.default for k, o in SOURCES.get(fmt, {}).items() if not o.required}
    return {"format": fmt, **defaults, **{k: v for k, v in spec.items() if k != "format"}}


def user_source(path, data_cfg: dict) -> dict:
    """The source of a user's file for evaluate --data and predict: its format told by its name,
    with the options of the training data (``data_cfg['train']``) where that had the same format
    (a single image counts as an image folder), so that the file is read as training read its
    own. An .npz lacking the training data's array names falls back to ``x`` and ``y``."""
    spec = resolve(str(path))
    train = resolve(data_cfg["train"]) if data_cfg.get("train") else {}
    if train.get("format") == {"image": "images"}.get(spec["format"], spec["format"]):
        own = ("format", "path", "images", "labels")
        own += ("x", "y") if spec["format"] == "npy" else ()
        spec.update({k: v for k, v in train.items() if k not in own})
    if spec["format"] == "npz" and Path(path).is_file():
        names = npz_names(str(path))
        for key in ("x", "y"):
            if spec[key] not in names:
                spec[key] = key
    return spec


# -- reading -----------------------------------------------------------------------------------


def read(spec, encoding=None, fit_rows=None):
    """The labelled Dataset a (resolved) source names; a table's columns encoded with
    ``encoding`` (a trained columns.Encoding), else with one fitted on its ``fit_rows(n)``."""
    spec = resolve(spec)
    fmt = spec["format"]
    where = str(spec.get("path") or spec.get("images") or spec.get("x"))
    if not Path(where).exists():
        raise UserError(where, "file not found")
    if (
        fmt in (None, "image")
        or (fmt == "npy" and "x" not in spec)
        or (fmt == "idx" and spec["labels"] is None)
    ):
        _labelled_format(where, fmt, None, ())
    if fmt == "npz":  # x memory-mapped where stored uncompressed; the labels in memory
        arrays = read_npz(spec["path"], (spec["x"], spec["y"]))
        return checked(arrays[spec["x"]], np.array(arrays[spec["y"]]), spec["path"])
    if fmt == "npy":
        return checked(read_npy(spec["x"]), np.array(read_npy(spec["y"])), spec["x"])
    if fmt in ("csv", "parquet"):
        return read_labelled(
            spec["path"],
            spec["label"],
            spec.get("header", "auto"),
            spec.get("delimiter", "auto"),
            spec["columns"],
            encoding,
            fit_rows,
        )
    if fmt == "idx":
        return read_idx_pair(spec["images"], spec["labels"])
    if fmt == "images":
        return read_folder(spec["path"], spec["size"], spec["color"])
    raise UserError(where, f"unsupported data format '{fmt}'")


def idx_images(path) -> np.ndarray:
    """The samples of an IDX images file; (N, H, W) images get a channel axis: (N, 1, H, W)."""
    x = read_idx(path)
    return x[:, None, :, :] if x.ndim == 3 else x


def read_idx_pair(images, labels):
    """An IDX images file and its labels file as one labelled Dataset (pixels kept as stored)."""
    x = idx_images(images)
    y = read_idx(labels)
    if y.ndim != 1:
        raise UserError(str(labels), f"IDX labels must be one number per sample, got {y.shape}")
    if len(y) != len(x):
        raise UserError(str(labels), f"{len(y)} labels for the {len(x)} images of {images}")
    return checked(x, y, str(images))

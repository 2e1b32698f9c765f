"""Data loading: the IDX reader, the bundled MNIST, .npz files and the checks against the net."""

import gzip
import struct

import numpy as np
import pytest

from nettrain import data
from nettrain.core.errors import UserError
from nettrain.data.idx import read_idx


def idx_bytes(array: np.ndarray, code: int, dtype: str) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(a, 0x08, ">u1")
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    np.testing.assert_array_equal(read_idx(path), a)


def test_idx_big_endian_int32(tmp_path):
    a = np.array([1, -2, 70000], dtype=np.int32)
    (tmp_path / "b.idx").write_bytes(idx_bytes(a, 0x0C, ">i4"))
    b = read_idx(tmp_path / "b.idx")
    np.testing.assert_array_equal(b, a)
    assert b.dtype.isnative


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"\x01\x00\x08\x01", "bad magic"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "header says"),
    ],
)
def test_idx_errors(tmp_path, raw, message):
    (tmp_path / "bad.idx").write_bytes(raw)
    with pytest.raises(UserError, match=message):
        read_idx(tmp_path / "bad.idx")


def test_bundled_mnist():
    train, test = data.mnist("train"), data.mnist("test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.uint8  # held as bytes, scaled per batch
    assert sorted(np.unique(train.y)) == list(range(10))
    batch = train.inputs(np.arange(100), np.float32)
    assert batch.dtype == np.float32 and batch.min() == 0.0 and batch.max() == 1.0
    # first training label of the official MNIST file is 5, first test label is 7
    assert train.y[0] == 5 and test.y[0] == 7


def test_targets_are_one_hot_for_labels():
    ds = data.checked(np.zeros((3, 2)), np.array([2, 0, 1]), "mem")
    np.testing.assert_array_equal(ds.targets(np.arange(3), 3, np.float32), np.eye(3)[[2, 0, 1]])


def test_npz_file_and_its_errors(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((4, 3)), y=np.array([0, 1, 1, 0]))
    ds = data.load_file(path)
    assert ds.has_classes and ds.sample_shape == (3,)
    np.savez(tmp_path / "nox.npz", features=np.ones((4, 3)))
    with pytest.raises(UserError, match="no array 'x'.*features"):
        data.load_file(tmp_path / "nox.npz")
    np.savez(tmp_path / "nan.npz", x=np.array([[1.0], [np.nan]]), y=np.array([0, 1]))
    with pytest.raises(UserError, match="NaN or Inf.*sample 1"):
        data.load_file(tmp_path / "nan.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(UserError, match="cannot read"):
        data.load_file(tmp_path / "obj.npz")
    np.savez(tmp_path / "len.npz", x=np.ones((4, 3)), y=np.array([0, 1]))
    with pytest.raises(UserError, match="4 samples but y has 2"):
        data.load_file(tmp_path / "len.npz")


def test_data_is_checked_against_the_net():
    ds = data.checked(np.zeros((3, 1, 2, 2)), np.array([0, 1, 4]), "d.npz")
    assert data.fit_to_net(ds, (4,), 5).sample_shape == (4,)  # same size: reshaped
    with pytest.raises(UserError, match="net's input is"):
        data.fit_to_net(ds, (5,), 5)
    with pytest.raises(UserError, match="label 4 is out of range.*0..2"):
        data.fit_to_net(ds, (1, 2, 2), 3)

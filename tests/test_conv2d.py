"""Conv2d against a slow numpy reference, cases worked by hand, finite differences, shape errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, layer_grad_errors

from nettrain.layers.base import ShapeError
from nettrain.layers.conv2d import Conv2d


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pads(padding, kernel):
    """(ph, pw) as docs/reference.md defines them: valid 0, same (k-1)//2, an int or a pair."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        return tuple((k - 1) // 2 for k in pair(kernel))
    return pair(padding)


def windows(x, kh, kw, stride, padding):
    """Yield (oh, ow, window (N, C, kh, kw), its (rows, cols) slices) over the zero-padded x."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH, OW = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    for oh in range(OH):
        for ow in range(OW):
            rows, cols = slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)
            yield oh, ow, xp[:, :, rows, cols], (rows, cols)


def reference_forward(x, weight, bias, stride, padding):
    """y (N, F, OH, OW), one einsum per output position."""
    F, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    OH, OW = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
    y = np.zeros((len(x), F, OH, OW))
    for oh, ow, window, _ in windows(x, kh, kw, stride, padding):
        y[:, :, oh, ow] = np.einsum("ncij,fcij->nf", window, weight) + bias
    return y


def reference_backward(x, weight, dy, stride, padding):
    """dx, dW, db for dL/dy = dy: each output position adds its share, window by window."""
    (ph, pw), (_, _, kh, kw) = padding, weight.shape
    dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    dW = np.zeros(weight.shape)
    for oh, ow, window, (rows, cols) in windows(x, kh, kw, stride, padding):
        g = dy[:, :, oh, ow]
        dxp[:, :, rows, cols] += np.einsum("nf,fcij->ncij", g, weight)
        dW += np.einsum("nf,ncij->fcij", g, window)
    dx = dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]
    return dx, dW, dy.sum(axis=(0, 2, 3))


# (batch, channels, H, W, filters, kernel, stride, padding)
CASES = [
    (1, 1, 5, 5, 1, 3, 1, "valid"),
    (2, 3, 7, 6, 4, 3, 2, "same"),
    (3, 2, 8, 8, 3, [3, 2], [2, 1], [1, 2]),
    (2, 2, 6, 9, 5, 5, 1, 2),
    (1, 4, 4, 4, 2, 1, 1, "valid"),
    (4, 1, 9, 7, 2, [2, 4], 3, 0),
    (2, 3, 5, 5, 2, 5, 1, "same"),
    (1, 2, 3, 3, 3, 3, [1, 2], [3, 0]),
    (2, 2, 4, 5, 3, 2, 1, [2, 3]),  # stride 1, padding past kernel - 1: outputs see only zeros
    (3, 1, 6, 6, 5, 3, 1, "same"),  # an odd filter count: the last filter goes alone
    (2, 3, 4, 4, 64, 3, 1, "same"),  # stride 1, but many filters on a small image: im2col
]
TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-4)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, dtype):
    N, C, H, W, F, kernel, stride, padding = case
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=kernel, stride=stride,
                  padding=padding)  # fmt: skip
    rng = np.random.default_rng(1)
    layer.params["bias"][...] = rng.standard_normal(F)
    weight, bias = (layer.params[name].astype(np.float64) for name in ("weight", "bias"))
    x = rng.standard_normal((N, C, H, W))
    s, p = pair(stride), pads(padding, kernel)

    y = layer.forward(x.astype(dtype))
    np.testing.assert_allclose(y, reference_forward(x, weight, bias, s, p), **TOLERANCE[dtype])

    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy.astype(dtype))
    ref_dx, ref_dW, ref_db = reference_backward(x, weight, dy, s, p)
    np.testing.assert_allclose(dx, ref_dx, **TOLERANCE[dtype])
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, **TOLERANCE[dtype])
    np.testing.assert_allclose(layer.grads["bias"], ref_db, **TOLERANCE[dtype])


def test_without_bias():
    layer = build(Conv2d, (2, 5, 5), filters=3, kernel=3, padding="same", bias=False)
    assert set(layer.params) == {"weight"}
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    ref = reference_forward(x, layer.params["weight"], np.zeros(3), (1, 1), (1, 1))
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12, atol=1e-12)
    assert layer.flops() == 2 * 2 * 9 * 3 * 5 * 5


def test_by_hand_valid():
    # y[i, j] = 1 x[i, j] + 2 x[i, j+1] + 3 x[i+1, j] + 4 x[i+1, j+1]
    layer = build(Conv2d, (1, 3, 3), filters=1, kernel=2)
    layer.params["weight"][...] = [[[[1, 2], [3, 4]]]]
    layer.params["bias"][...] = 0.5
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, [[[[37.5, 47.5], [67.5, 77.5]]]])

    dx = layer.backward(np.ones_like(y))
    # each input gets the sum of the kernel cells that ever lie on it
    np.testing.assert_array_equal(dx, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]])
    # each weight gets the sum of the inputs it multiplies: the four 2x2 windows added up
    np.testing.assert_array_equal(layer.grads["weight"], [[[[12, 16], [24, 28]]]])
    np.testing.assert_array_equal(layer.grads["bias"], [4])


def test_by_hand_same_padding():
    # kernel centre 1 and bottom-right 2: y[i, j] = x[i, j] + 2 x[i+1, j+1], zeros past the edge
    layer = build(Conv2d, (1, 2, 2), filters=1, kernel=3, padding="same", bias=False)
    layer.params["weight"][...] = [[[[0, 0, 0], [0, 1, 0], [0, 0, 2]]]]
    y = layer.forward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(y, [[[[9, 2], [3, 4]]]])


@pytest.mark.parametrize(
    "in_shape, options",
    [
        ((2, 5, 6), dict(filters=3, kernel=3, stride=1, padding="same")),
        ((3, 7, 7), dict(filters=2, kernel=[3, 2], stride=[2, 1], padding=[1, 0])),
        ((1, 6, 5), dict(filters=2, kernel=4, stride=2, padding="valid")),
    ],
)
def test_gradcheck(in_shape, options):
    rng = np.random.default_rng(3)
    layer = build(Conv2d, in_shape, **options)
    layer.params["bias"][...] = rng.standard_normal(options["filters"])
    x = rng.standard_normal((2, *in_shape))
    # y is linear in each tensor, so a larger step adds no truncation error and less rounding
    errors = layer_grad_errors(layer, x, rng, h=1e-4)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype(dtype):
    layer = build(Conv2d, (2, 6, 6), dtype=dtype, filters=3, kernel=3, padding=1)
    x = np.random.default_rng(4).standard_normal((2, 2, 6, 6)).astype(dtype)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads.values())


def test_repeatable():
    layer = build(Conv2d, (3, 9, 9), dtype=np.float32, filters=4, kernel=3, stride=2, padding=1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((8, 4, 5, 5)).astype(np.float32)
    first = (layer.forward(x), layer.backward(dy), layer.grads["weight"].copy())
    second = (layer.forward(x), layer.backward(dy), layer.grads["weight"].copy())
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_config_style_options_and_summary():
    # the config validator hands sizes over as [h, w] lists
    layer = build(Conv2d, (1, 28, 28), filters=8, kernel=[5, 5], stride=[1, 1], padding="same")
    assert layer.out_shape == (8, 28, 28)
    assert layer.describe() == "conv2d 8@5x5 s1 p2"
    assert layer.flops() == (2 * 25 + 1) * 8 * 28 * 28
    assert layer.params["weight"].shape == (8, 1, 5, 5)
    assert layer.params["bias"].shape == (8,)
    assert np.all(layer.params["bias"] == 0) and np.any(layer.params["weight"] != 0)


def test_even_kernel_with_same_padding():
    with pytest.raises(ShapeError, match="odd kernel.*got kernel 4x4.*explicit integer padding"):
        build(Conv2d, (1, 8, 8), filters=2, kernel=4, padding="same")


def test_kernel_larger_than_input():
    with pytest.raises(ShapeError, match=r"kernel 5x5 is larger than its padded input 4x6"):
        build(Conv2d, (1, 4, 6), filters=2, kernel=5)


@pytest.mark.parametrize(
    "in_shape, hint", [((784,), "[1, 28, 28]"), ((1024,), "[1, 32, 32]"), ((5, 7), "[1, 5, 7]")]
)
def test_not_an_image(in_shape, hint):
    with pytest.raises(ShapeError, match=r"\(channels, height, width\)") as error:
        build(Conv2d, in_shape, filters=2, kernel=3)
    assert f"got shape {in_shape}" in str(error.value)
    assert f"model.input: {hint}" in str(error.value)


@pytest.mark.parametrize("case", CASES)
def test_fused_relu_matches_reference(case, monkeypatch):
    """With the relu folded in: y = max(conv, 0) and dy masked where y = 0, as a separate relu;
    a tiny chunk size makes the input gradient go through several chunks."""
    monkeypatch.setattr("nettrain.layers.conv2d.CHUNK_BYTES", 64)
    N, C, H, W, F, kernel, stride, padding = case
    layer = build(Conv2d, (C, H, W), filters=F, kernel=kernel, stride=stride, padding=padding)
    layer.fused_relu = True
    rng = np.random.default_rng(2)
    weight, bias = layer.params["weight"], layer.params["bias"]
    bias[...] = rng.standard_normal(F)
    x = rng.standard_normal((N, C, H, W))
    s, p = pair(stride), pads(padding, kernel)
    s_ref = reference_forward(x, weight, bias, s, p)
    y = layer.forward(x)
    np.testing.assert_allclose(y, np.maximum(s_ref, 0), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    ref_dx, ref_dW, ref_db = reference_backward(x, weight, dy * (s_ref > 0), s, p)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-10, atol=1e-12)


def test_stride_1_goes_direct_unless_many_filters_meet_small_images():
    assert build(Conv2d, (1, 28, 28), filters=8, kernel=5, padding="same").direct
    assert build(Conv2d, (64, 16, 16), filters=64, kernel=3, padding="same").direct
    assert not build(Conv2d, (64, 8, 8), filters=128, kernel=3, padding="same").direct
    assert not build(Conv2d, (3, 9, 9), filters=4, kernel=3, stride=2).direct


def test_builder_folds_relu_into_conv2d_only():
    from nettrain.network import build_network

    specs = [
        {"type": "conv2d", "filters": 2, "kernel": 3, "stride": 1, "padding": "valid",
         "activation": "relu", "bias": True, "init": "auto"},
        {"type": "dense", "units": 3, "activation": "relu", "bias": True, "init": "auto"},
    ]  # fmt: skip
    net = build_network({"layers": specs, "loss": "squared_error"}, np.float64, (1, 5, 5))
    conv, relu0, dense, relu1 = net.layers
    assert conv.fused_relu and relu0.fused
    assert not relu1.fused and not hasattr(dense, "fused_relu")

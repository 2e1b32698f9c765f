"""Conv2d against a slow numpy reference, cases worked by hand, finite differences, shape errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build
from helpers import run_layer as run
from references import conv_backward as reference_backward
from references import conv_forward as reference_forward
from references import pads, pair

from nettrain.layers.base import ShapeError
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.layers.conv2d.plan import plan
from nettrain.runtime import vectors


def test_without_bias():
    layer = build(Conv2d, (2, 5, 5), filters=3, kernel=3, padding="same", bias=False)
    assert set(layer.params) == {"weight"}
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    ref = reference_forward(x, layer.params["weight"], np.zeros(3), (1, 1), (1, 1))
    np.testing.assert_allclose(run(layer, x)[0], ref, rtol=1e-12, atol=1e-12)
    assert layer.flops() == 2 * 2 * 9 * 3 * 5 * 5


def test_by_hand_valid():
    # y[i, j] = 1 x[i, j] + 2 x[i, j+1] + 3 x[i+1, j] + 4 x[i+1, j+1]
    layer = build(Conv2d, (1, 3, 3), filters=1, kernel=2)
    layer.params["weight"][...] = [[[[1, 2], [3, 4]]]]
    layer.params["bias"][...] = 0.5
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y, dx = run(layer, x, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y, [[[[37.5, 47.5], [67.5, 77.5]]]])

    # each input gets the sum of the kernel cells that ever lie on it
    np.testing.assert_array_equal(dx, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]])
    # each weight gets the sum of the inputs it multiplies: the four 2x2 windows added up
    np.testing.assert_array_equal(layer.grads["weight"], [[[[12, 16], [24, 28]]]])
    np.testing.assert_array_equal(layer.grads["bias"], [4])


def test_by_hand_same_padding():
    # kernel centre 1 and bottom-right 2: y[i, j] = x[i, j] + 2 x[i+1, j+1], zeros past the edge
    layer = build(Conv2d, (1, 2, 2), filters=1, kernel=3, padding="same", bias=False)
    layer.params["weight"][...] = [[[[0, 0, 0], [0, 1, 0], [0, 0, 2]]]]
    y, _ = run(layer, [[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(y, [[[[9, 2], [3, 4]]]])


def test_repeatable():
    layer = build(Conv2d, (3, 9, 9), dtype=np.float32, filters=4, kernel=3, stride=2, padding=1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((8, 4, 5, 5)).astype(np.float32)
    first = (*run(layer, x, dy), layer.grads["weight"].copy())
    second = (*run(layer, x, dy), layer.grads["weight"].copy())
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


# (batch, channels, H, W, filters, kernel, stride, padding); every layer and fusion is compared
# with the reference on many more shapes in test_layer_table.py
CASES = [
    (2, 3, 7, 6, 4, 3, 2, "same"),
    (3, 2, 8, 8, 3, [3, 2], [2, 1], [1, 2]),
    (2, 2, 6, 9, 5, 5, 1, 2),
    (2, 3, 4, 4, 64, 3, 1, "same"),  # stride 1, but many filters on a small image: im2col
    (2, 8, 9, 7, 6, 3, 1, "same"),  # register tiles of 4 filters, then a pair
    (3, 16, 7, 8, 9, 3, 1, [1, 0]),  # 2 tiles and 1 filter; tiles for the input gradient
]


@pytest.mark.parametrize("case", CASES)
def test_fused_relu_matches_reference(case, monkeypatch):
    """With the relu folded in: y = max(conv, 0) and dy masked where y = 0, as a separate relu;
    a tiny chunk size makes the input gradient go through several chunks."""
    monkeypatch.setattr("nettrain.layers.conv2d.plan.CHUNK_BYTES", 64)
    N, C, H, W, F, kernel, stride, padding = case
    layer = build(Conv2d, (C, H, W), filters=F, kernel=kernel, stride=stride, padding=padding,
                  fused="relu")  # fmt: skip
    rng = np.random.default_rng(2)
    weight, bias = layer.params["weight"], layer.params["bias"]
    bias[...] = rng.standard_normal(F)
    x = rng.standard_normal((N, C, H, W))
    s, p = pair(stride), pads(padding, kernel)
    s_ref = reference_forward(x, weight, bias, s, p)
    dy = rng.standard_normal((N, *layer.out_shape))
    y, dx = run(layer, x, dy)
    np.testing.assert_allclose(y, np.maximum(s_ref, 0), rtol=1e-10, atol=1e-12)
    ref_dx, ref_dW, ref_db = reference_backward(x, weight, dy * (s_ref > 0), s, p)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-10, atol=1e-12)


def test_stride_1_goes_direct_unless_many_filters_meet_small_images():
    assert build(Conv2d, (1, 28, 28), filters=8, kernel=5, padding="same").direct
    assert build(Conv2d, (64, 16, 16), filters=64, kernel=3, padding="same").direct
    assert not build(Conv2d, (64, 8, 8), filters=128, kernel=3).direct
    # with 'same' padding AVX-512's tiles take the batch packed into one run (packed.py) instead
    assert plan((64, 8, 8), 128, (3, 3), (1, 1), (1, 1), "float32", unit=vectors.AVX512).packed
    assert not build(Conv2d, (3, 9, 9), filters=4, kernel=3, stride=2).direct


def test_builder_fuses_relu_into_conv2d_only():
    from nettrain.net.network import build_network

    specs = [
        {"type": "conv2d", "filters": 2, "kernel": 3, "stride": 1, "padding": "valid",
         "activation": "relu", "bias": True, "init": "auto"},
        {"type": "dense", "units": 3, "activation": "relu", "bias": True, "init": "auto"},
    ]  # fmt: skip
    net = build_network({"layers": specs, "loss": "squared_error"}, np.float64, (1, 5, 5))
    assert [(layer.kind, layer.fused) for layer in net.layers] == [
        ("conv2d", "relu"),
        ("dense", None),
        ("relu", None),
    ]

"""Batch normalisation, PyTorch's BatchNorm1d/2d conventions (weights move between the two).

x: (batch, C, *rest) -> y: same shape, one statistic per channel c (the first per-sample axis:
a dense layer's units, a conv/pool layer's channels) over the batch and the other axes, i.e.
over m = batch * prod(rest) values.

Training: y = weight * xhat + bias, xhat = (x - mean_B) / sqrt(var_B + eps), with the batch's
mean and biased variance (sum of squares / m); then
    running_mean <- (1 - momentum) running_mean + momentum mean_B
    running_var  <- (1 - momentum) running_var  + momentum var_B * m / (m - 1)   (unbiased).
With m = 1 (a batch of one sample after a dense layer) the unbiased variance is undefined:
the sample is normalised by its own statistics (y = bias, dx = 0) and the running statistics
are left as they are, so a short last batch cannot poison them. (PyTorch refuses such a batch.)
Evaluation: y = weight * (x - running_mean) / sqrt(running_var + eps) + bias.

Backward (training), per channel, with g = dy summed over the m values:
    dbias = sum g,  dweight = sum g xhat,
    dx = weight / (m sqrt(var_B + eps)) * (m g - dbias - xhat dweight).

With ``fused="relu"`` (the network builder's choice, for a relu right after the batchnorm) the
normalising pass writes max(y, 0), in training and evaluation, and backward masks dy by y > 0
before the sums: one pass over memory each way instead of two or three.

Statistics and sums are taken in float64, each channel by one thread in a fixed order, so the
results do not depend on the thread count.

In a data-parallel run (nettrain.training.mpi) the step that ``train`` is (nettrain.core.step.Step)
gives ``allsum``, the sum over the ranks: each rank holds a share of the batch, and the mean, the
variance, m and the backward's sums are those of the whole batch (PyTorch's SyncBatchNorm), so N
ranks compute what one process computes. The parameter gradients stay each rank's own sums; the
step's allreduce adds them up.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nettrain.core.options import Opt
from nettrain.layers.base import ANY, Layer, ShapeError

VECTOR_MATH = {"reassoc", "contract"}


class BatchNorm(Layer):
    kind = "batchnorm"
    FUSABLE = ("relu",)
    OUTPUT_RANGE = ANY
    TORCH = "torch.nn.BatchNorm1d"  # BatchNorm2d after a conv: the same arrays, (C,) each
    OPTIONS = {
        "momentum": Opt(
            "float", 0.1, min=0, max=1, doc="weight of each batch in the running statistics"
        ),
        "eps": Opt("float", 1e-5, min=0, exclusive_min=True, doc="added to the variance"),
    }
    flops_per_value = 2
    whole_batch = True  # under MPI its training pass sums over the ranks (Network.empty_pass)

    def shapes(self, in_shape):
        if not in_shape:
            raise ShapeError("batchnorm needs an input with at least one axis")
        C = in_shape[0]
        return tuple(in_shape), {"weight": (C,), "bias": (C,)}, {
            "running_mean": (C,), "running_var": (C,),
        }  # fmt: skip

    def init_params(self, rng):
        self.params["weight"][...] = 1
        self.params["bias"][...] = 0
        self.state["running_mean"][...] = 0
        self.state["running_var"][...] = 1

    def forward(self, x, train=True):
        """saved: (x (batch, C, rest), mean_B and 1 / sqrt(var_B + eps) (C,) float64, m the
        values per channel in the whole batch, y when relu is fused in, else None, the step's
        allsum). xhat is not kept but made again from x by backward: one array less written
        (x is there anyway: the layer before made it)."""
        N, C, relu = len(x), self.in_shape[0], self.fused is not None
        x3 = np.ascontiguousarray(x, dtype=self.dtype).reshape(N, C, math.prod(self.in_shape[1:]))
        y = np.empty(x3.shape, dtype=self.dtype)
        eps, w, b = self.options["eps"], self.params["weight"], self.params["bias"]
        if not train:
            rm, rv = self.state["running_mean"], self.state["running_var"]
            scale = w.astype(np.float64) / np.sqrt(rv.astype(np.float64) + eps)
            shift = b - rm.astype(np.float64) * scale
            _affine(x3, scale, shift, relu, y)
            return y.reshape(x.shape), None
        allsum = getattr(train, "allsum", None)  # a Step's sum over the ranks, or None
        if allsum is None:
            mean, var = np.empty(C), np.empty(C)
            _normalise(x3, w, b, eps, relu, y, mean, var)
            m = x3.shape[0] * x3.shape[2]
        else:
            mean, var, m = self._global_statistics(x3, allsum)
            _apply(x3, w, b, mean, 1 / np.sqrt(var + eps), relu, y)
        if m > 1:
            momentum = self.options["momentum"]
            for name, batch in (("running_mean", mean), ("running_var", var * (m / (m - 1)))):
                run = self.state[name]
                run[...] = (1 - momentum) * run + momentum * batch
        inv = 1 / np.sqrt(var + eps)
        return y.reshape(x.shape), (x3, mean, inv, m, y if relu else None, allsum)

    def _global_statistics(self, x3, allsum):
        """(mean, biased variance, m) of the whole batch, summed over the ranks."""
        C = x3.shape[1]
        sums = np.zeros(C + 1)
        _sums(x3, np.zeros(C), False, sums[:C])
        sums[C] = x3.shape[0] * x3.shape[2]
        sums = allsum(sums)
        m = int(sums[C])
        mean = sums[:C] / max(m, 1)
        squares = np.zeros(C)
        _sums(x3, mean, True, squares)
        return mean, allsum(squares) / max(m, 1), m

    def backward(self, saved, dy, need_dx=True):
        x, mean, inv, m, y, allsum = saved
        dy3 = np.ascontiguousarray(dy, dtype=self.dtype).reshape(x.shape)
        relu = y is not None
        y = y if relu else dy3  # read only with relu; any array of its type will do
        dx = np.empty(x.shape, dtype=self.dtype) if need_dx else x[:0]
        dw, db = np.empty(len(inv)), np.empty(len(inv))
        w = self.params["weight"]
        if allsum is None:
            _backward(dy3, x, mean, inv, y, relu, w, need_dx, dx, dw, db)
        else:  # this rank's sums are its gradients; dx needs the whole batch's
            _backward(dy3, x, mean, inv, y, relu, w, False, dx, dw, db)
            if need_dx:
                total = allsum(np.concatenate([db, dw]))
                C = len(inv)
                _dx(dy3, x, mean, inv, y, relu, w, total[:C], total[C:], m, dx)
        self.grads["weight"][...] = dw
        self.grads["bias"][...] = db
        return dx.reshape(dy.shape) if need_dx else None

    def flops(self):
        return (self.flops_per_value + bool(self.fused)) * math.prod(self.out_shape)

    def kinks(self, saved):
        return None if saved[4] is None else saved[4] > 0

    def describe(self):
        return "batchnorm"

    def onnx(self, g, x):
        """BatchNormalization with the running statistics (evaluation mode)."""
        p, s = self.params, self.state
        inputs = [x, g.constant("weight", p["weight"]), g.constant("bias", p["bias"])]
        inputs += [g.constant("mean", s["running_mean"]), g.constant("var", s["running_var"])]
        return g.node("BatchNormalization", inputs, epsilon=float(self.options["eps"]))


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def _normalise(x, w, b, eps, relu, y, mean, var):
    """x (N, C, S) -> y (N, C, S) (y >= 0 with ``relu``), with each channel's mean and biased
    variance (C,)."""
    N, C, S = x.shape
    m = N * S
    for c in prange(C):
        total = 0.0
        for n in range(N):
            for s in range(S):
                total += x[n, c, s]
        mu = total / m
        total = 0.0
        for n in range(N):
            for s in range(S):
                d = x[n, c, s] - mu
                total += d * d
        v = total / m
        inv = 1 / math.sqrt(v + eps)
        mean[c], var[c] = mu, v
        wc, bc = w[c], b[c]
        for n in range(N):
            for s in range(S):
                v = wc * ((x[n, c, s] - mu) * inv) + bc
                y[n, c, s] = max(v, 0) if relu else v


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def _affine(x, scale, shift, relu, y):
    """y = x * scale[c] + shift[c] for x, y (N, C, S), then max(., 0) with ``relu``: evaluation
    with the running statistics."""
    N, C, S = x.shape
    for n in prange(N):
        for c in range(C):
            a, b = scale[c], shift[c]
            for s in range(S):
                v = x[n, c, s] * a + b
                y[n, c, s] = max(v, 0) if relu else v


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def _backward(dy, x, mean, inv, y, relu, w, need_dx, dx, dw, db):
    """dw, db (C,) and, with need_dx, dx (N, C, S) from dy, x (N, C, S) and the forward's mean
    and inv (C,) (xhat = (x - mean) inv, made again here); with ``relu``, dy is first masked by
    y > 0 (y the forward's output)."""
    N, C, S = dy.shape
    m = N * S
    for c in prange(C):
        sg = 0.0
        sgx = 0.0
        mu, k = mean[c], inv[c]
        for n in range(N):
            for s in range(S):
                g = dy[n, c, s]  # loaded first: a select, not a mispredicted branch
                g = g if not relu or y[n, c, s] > 0 else 0
                sg += g
                sgx += g * ((x[n, c, s] - mu) * k)
        dw[c], db[c] = sgx, sg
        if need_dx:
            a = w[c] * k / m
            for n in range(N):
                for s in range(S):
                    g = dy[n, c, s]
                    g = g if not relu or y[n, c, s] > 0 else 0
                    dx[n, c, s] = a * (m * g - sg - (x[n, c, s] - mu) * k * sgx)


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def _sums(x, centre, squares, out):
    """out[c]: the sum of x[:, c, :], or with ``squares`` of its squared deviations from
    centre[c]."""
    N, C, S = x.shape
    for c in prange(C):
        total = 0.0
        mu = centre[c]
        for n in range(N):
            for s in range(S):
                d = x[n, c, s] - mu
                total += d * d if squares else d
        out[c] = total


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def _apply(x, w, b, mean, inv, relu, y):
    """y = w[c] (x - mean[c]) inv[c] + b[c] (then max(., 0) with ``relu``) for x (N, C, S)."""
    N, C, S = x.shape
    for c in prange(C):
        mu, k, wc, bc = mean[c], inv[c], w[c], b[c]
        for n in range(N):
            for s in range(S):
                v = wc * ((x[n, c, s] - mu) * k) + bc
                y[n, c, s] = max(v, 0) if relu else v


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def _dx(dy, x, mean, inv, y, relu, w, sg, sgx, m, dx):
    """dx (N, C, S) from the whole batch's sums sg, sgx (C,) over m values per channel, x and
    the forward's mean and inv (dy masked by y > 0 with ``relu``)."""
    N, C, S = dy.shape
    for c in prange(C):
        mu, k = mean[c], inv[c]
        a = w[c] * k / m
        for n in range(N):
            for s in range(S):
                g = dy[n, c, s]
                g = g if not relu or y[n, c, s] > 0 else 0
                dx[n, c, s] = a * (m * g - sg[c] - (x[n, c, s] - mu) * k * sgx[c])

"""Augmentation (``data.augment``): a random view of each training image, drawn per batch.

Samples are (C, H, W). For each sample of a training batch, independently:

- ``translate: k`` shifts the image by dy, dx drawn uniformly from -k..k pixels (DeepCL's
  ``translate``); pixels shifted in from outside are 0;
- ``crop: {size: [h, w], padding: p}`` pads the image with p zeros on every side and takes an
  h x w window at a uniform random position (``size`` defaults to the image's, so that
  ``{padding: 4}`` is the usual pad-and-crop); outside training (test and validation sets,
  predict) every image is cut to its central h x w window;
- ``flip: true`` mirrors it left to right with probability 1/2;
- ``rotate: r`` turns it about its centre by an angle drawn uniformly from -r..r degrees, and
  ``scale: s`` zooms it by a factor drawn uniformly from 1 - s..1 + s (torchvision's
  ``RandomAffine(degrees, scale)``, Keras' ``RandomRotation``/``RandomZoom``); the view is then
  sampled bilinearly (uint8 pixels rounded to the nearest), with 0 outside the image.

Only the training batches of ``fit`` are augmented. The draws of step s come from stream
``[seed, 6, s]`` (``nettrain.core.streams.augment_rng``), so a resumed run draws the same views as
one never interrupted, with no generator state to save. The view is gathered from the stored samples
(uint8 pixels stay uint8) by one Numba kernel, before the conversion to the run's dtype; the draws
of rotate and scale come after the others, so adding them leaves a config's other draws as they
were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numba import njit

from nettrain.core.errors import UserError
from nettrain.core.options import Opt

AUGMENT = {
    "translate": Opt(
        "int",
        0,
        min=0,
        doc="shift by dy, dx drawn uniformly from -k..k pixels; pixels shifted in are 0",
    ),
    "flip": Opt("bool", False, doc="mirror left-right with probability 1/2"),
    "rotate": Opt(
        "float",
        0.0,
        min=0,
        max=180,
        doc="turn about the centre by an angle drawn uniformly from -r..r degrees (bilinear)",
    ),
    "scale": Opt(
        "float",
        0.0,
        min=0,
        max=1,
        exclusive_max=True,
        doc="zoom by a factor drawn uniformly from 1 - s..1 + s (bilinear)",
    ),
}
CROP = {
    "size": Opt(
        "size",
        None,
        doc="[h, w] of the window; null: the image's size. Smaller: the net's input, and images "
        "outside training are cut to their central window",
    ),
    "padding": Opt(
        "int",
        0,
        min=0,
        doc="zeros added on every side before cropping ({padding: 4}: the usual pad-and-crop)",
    ),
}


@dataclass
class Augment:
    """A resolved ``data.augment``: translate k, flip, the crop window (h, w, padding), and the
    largest rotation (degrees) and zoom (fraction)."""

    translate: int
    flip: bool
    crop: tuple | None  # (h, w, padding)
    rotate: float = 0.0
    scale: float = 0.0

    @classmethod
    def from_config(cls, spec: dict | None, input_shape, where: str) -> Augment | None:
        """The Augment of ``data.augment`` for a net taking ``input_shape``; None if it does
        nothing."""
        if not spec:
            return None
        crop = spec["crop"]
        aug = cls(spec["translate"], spec["flip"], None, spec["rotate"], spec["scale"])
        if crop is not None:
            h, w = crop["size"] or input_shape[1:]
            aug.crop = (h, w, crop["padding"])
        if not (aug.translate or aug.flip or aug.crop or aug.rotate or aug.scale):
            return None
        if len(input_shape) != 3:
            raise UserError(
                where,
                f"augmentation needs image samples (C, H, W); the net's input is "
                f"{tuple(input_shape)}",
                "set model.input to the images' shape, e.g. [1, 28, 28]",
            )
        return aug

    def apply(self, ds, idx, rng: np.random.Generator, part=None) -> np.ndarray:
        """Random views (batch, C, h, w) of samples ``idx`` of ``ds``, in the stored dtype.

        ``part`` (lo, hi, n): ``idx`` are rows lo:hi of a batch of n (a rank's share in a
        data-parallel run); the draws are the whole batch's, so a sample's view depends on its
        place in the batch, never on the rank."""
        rows = ds.stored_rows(idx)
        lo, hi, n = part or (0, len(rows), len(rows))
        C, H, W = ds.x.shape[1:]
        _, h, w = ds.sample_shape
        top = np.full(n, (H - h) // 2, np.int64)
        left = np.full(n, (W - w) // 2, np.int64)
        if self.crop is not None:
            p = self.crop[2]
            top = rng.integers(0, H + 2 * p - h + 1, n) - p
            left = rng.integers(0, W + 2 * p - w + 1, n) - p
        if self.translate:
            k = self.translate
            top -= rng.integers(-k, k + 1, n)
            left -= rng.integers(-k, k + 1, n)
        flip = rng.random(n) < 0.5 if self.flip else np.zeros(n, np.bool_)
        top, left, flip = top[lo:hi], left[lo:hi], flip[lo:hi]
        out = np.empty((len(rows), C, h, w), ds.x.dtype)
        if not (self.rotate or self.scale):
            _gather(ds.x, rows.astype(np.int64), top, left, flip, out)
            return out
        angle = (
            np.radians(rng.uniform(-self.rotate, self.rotate, n)) if self.rotate else np.zeros(n)
        )
        zoom = rng.uniform(1 - self.scale, 1 + self.scale, n) if self.scale else np.ones(n)
        whole = np.issubdtype(out.dtype, np.integer)
        bounds = np.iinfo(out.dtype) if whole else np.finfo(out.dtype)
        turn = (angle[lo:hi], zoom[lo:hi], whole, float(bounds.min), float(bounds.max))
        _warp(ds.x, rows.astype(np.int64), top, left, flip, *turn, out)
        return out


def crop_view(spec: dict | None, ds, where: str):
    """``ds`` seen through the central window of ``data.augment.crop`` (as outside training)."""
    if not spec or spec.get("crop") is None or spec["crop"]["size"] is None:
        return ds
    h, w = spec["crop"]["size"]
    if ds.x.ndim != 4:
        raise UserError(
            ds.name,
            f"{where} needs image samples (C, H, W); this data has samples of shape "
            f"{tuple(ds.x.shape[1:])}",
        )
    H, W = ds.x.shape[2:]
    if h > H or w > W:
        raise UserError(ds.name, f"{where} [{h}, {w}] is larger than the images ({H}x{W})")
    return replace(ds, window=((H - h) // 2, (W - w) // 2, h, w))


@njit(cache=True)
def _gather(x, rows, top, left, flip, out):
    """out[i, c, u, v] = x[rows[i], c, top[i] + u, left[i] + v'] with v' = w - 1 - v for a
    flipped sample, else v; 0 where that falls outside the image."""
    n, C, h, w = out.shape
    H, W = x.shape[2], x.shape[3]
    for i in range(n):
        r = rows[i]
        for c in range(C):
            for u in range(h):
                sy = top[i] + u
                for v in range(w):
                    sx = left[i] + (w - 1 - v if flip[i] else v)
                    if 0 <= sy < H and 0 <= sx < W:
                        out[i, c, u, v] = x[r, c, sy, sx]
                    else:
                        out[i, c, u, v] = 0


@njit(cache=True)
def _warp(x, rows, top, left, flip, angle, zoom, whole, lo, hi, out):
    """_gather's window, turned by angle[i] (radians, counter-clockwise on screen) and zoomed by
    zoom[i] about its centre: out[i, c, u, v] is x[rows[i], c] sampled bilinearly at

        (sy, sx) = centre + R(-angle) (u - cu, v' - cv) / zoom

    with centre = (top + cu, left + cv), (cu, cv) the window's centre ((h - 1) / 2, (w - 1) / 2)
    and v' as in _gather; pixels outside the image count as 0. ``whole`` (integer pixels): each
    value is rounded to the nearest and kept within lo..hi. With angle 0 and zoom 1 it is _gather
    exactly."""
    n, C, h, w = out.shape
    H, W = x.shape[2], x.shape[3]
    cu, cv = (h - 1) / 2, (w - 1) / 2
    for i in range(n):
        r = rows[i]
        cos, sin = np.cos(angle[i]) / zoom[i], np.sin(angle[i]) / zoom[i]
        for u in range(h):
            for v in range(w):
                du, dv = u - cu, (w - 1 - v if flip[i] else v) - cv
                sy = top[i] + cu + cos * du - sin * dv
                sx = left[i] + cv + sin * du + cos * dv
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                fy, fx = sy - y0, sx - x0
                for c in range(C):
                    total = 0.0
                    for dy in range(2):
                        for dx in range(2):
                            yy, xx = y0 + dy, x0 + dx
                            if 0 <= yy < H and 0 <= xx < W:
                                wy = fy if dy else 1 - fy
                                wx = fx if dx else 1 - fx
                                total += wy * wx * x[r, c, yy, xx]
                    if whole:
                        total = min(max(np.floor(total + 0.5), lo), hi)
                    out[i, c, u, v] = total

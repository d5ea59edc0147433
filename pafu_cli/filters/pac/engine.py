"""The engine of learned guided upsamplers (:class:`~pafu_cli.filters.pac.model.PacModel`):
NumPy for the low-resolution branch, Numba for the high-resolution part, in row bands.

Per map channel: normalise by the valid samples' range; the low-resolution branch
(three 3x3 convolutions as shifted matrix products, small) gives every sample its
features, corrected value and confidence; then, one band of output rows at a time,
the guide branch makes the high-resolution features of the band (one fused Numba
pass: 3x3 convolution, ReLU, 1x1) and the resampling kernel of
:mod:`pafu_cli.filters.pac._kernels` blends the samples. Memory: the inputs, the
output, low-resolution arrays and one band of features. The computation is the
network of :mod:`pafu_cli.training.pac.guided` (tested against it).
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from pafu_cli._numba import NJIT_CONTRACT_PARALLEL, NJIT_PARALLEL
from pafu_cli.filters.pac import _kernels as K
from pafu_cli.filters.pac.ops import compact_taps
from pafu_cli.filters.pac.resample import resize

BAND_ROWS = 128

GuideNet = namedtuple("GuideNet", ["top", "range_scale", "w1", "b1", "w2", "b2"])
"""The guide branch: ``top`` 1/255 or 1/65535 (the guide's full scale), range scale
(3,), 3x3 weights laid out (3, 3, 3, hidden), bias (hidden,), 1x1 weights (hidden,
feat), bias (feat,); float32."""


@nb.njit(**NJIT_PARALLEL)
def guide_features(guide, r0, net, out):
    """Features of guide rows r0 .. r0 + len(out): ``[g * r, w2 relu(w1 * g + b1) + b2]``
    with g the guide in [0, 1] (8-bit or 16-bit input), zero padding at the image's
    borders (not the band's). Planar inside a row (channel, column), so that the
    loops over columns vectorise."""
    h, w = guide.shape[0], guide.shape[1]
    hidden = net.b1.shape[0]
    feat = net.b2.shape[0]
    top = net.top
    for yy in nb.prange(out.shape[0]):
        y = r0 + yy
        hid = np.empty((hidden, w), np.float32)
        src = np.zeros((3, w + 2), np.float32)  # one guide row, planar, zero-padded by a column
        acc = np.empty(w, np.float32)
        for j in range(hidden):
            hid[j, :] = net.b1[j]
        for ky in range(3):
            sy = y + ky - 1
            if sy < 0 or sy >= h:
                continue
            for ci in range(3):
                for x in range(w):
                    src[ci, x + 1] = np.float32(guide[sy, x, ci]) * top
            for kx in range(3):
                for ci in range(3):
                    for j in range(hidden):
                        wv = net.w1[ky, kx, ci, j]
                        for x in range(w):
                            hid[j, x] += wv * src[ci, x + kx]
            if ky == 1:
                for ci in range(3):
                    r = net.range_scale[ci]
                    for x in range(w):
                        out[yy, x, ci] = src[ci, x + 1] * r
        for j in range(hidden):
            for x in range(w):
                hid[j, x] = max(hid[j, x], np.float32(0.0))
        for f in range(feat):
            acc[:] = net.b2[f]
            for j in range(hidden):
                wv = net.w2[j, f]
                for x in range(w):
                    acc[x] += wv * hid[j, x]
            for x in range(w):
                out[yy, x, 3 + f] = acc[x]


LR_BAND_ROWS = 64  # low-resolution rows per band of the low-resolution network


@nb.njit(**NJIT_CONTRACT_PARALLEL)
def conv_planar(x, w, b, relu, out):
    """``out`` (cout, h, w) = b + the zero-padded convolution of ``x`` (cin, h, w) by
    PyTorch weights ``w`` (cout, cin, k, k), k odd, then max(., 0) if ``relu``. Each
    output row sums its terms in one fixed order (bias, then ky, kx, ci) whatever the
    array's height, so a band of rows gives the bits of the whole map."""
    cin, h, wd = x.shape
    cout, k = w.shape[0], w.shape[2]
    r = k // 2
    for y in nb.prange(h):
        src = np.zeros((cin, wd + 2 * r), np.float32)  # one input row, zero-padded by r columns
        acc = np.empty((cout, wd), np.float32)
        for co in range(cout):
            acc[co, :] = b[co]
        for ky in range(k):
            sy = y + ky - r
            if sy < 0 or sy >= h:
                continue
            for ci in range(cin):
                for xx in range(wd):
                    src[ci, xx + r] = x[ci, sy, xx]
            for kx in range(k):
                for ci in range(cin):
                    for co in range(cout):
                        wv = w[co, ci, ky, kx]
                        for xx in range(wd):
                            acc[co, xx] += wv * src[ci, xx + kx]
        for co in range(cout):
            for xx in range(wd):
                v = acc[co, xx]
                out[co, y, xx] = max(v, np.float32(0.0)) if relu else v


def _head(layers, x):
    """The low-resolution network ``layers`` ((weights, bias, relu) of each
    convolution, float32 contiguous) on planar (5, rows, w) inputs: its head
    (channels, rows, w)."""
    for w, b, relu in layers:
        y = np.empty((w.shape[0],) + x.shape[1:], np.float32)
        conv_planar(x, w, b, relu, y)
        x = y
    return x


def _phase_taps(n_lr: int, s: int, table: np.ndarray):
    """Per output index o (n_lr * s of them): the samples q = o // s + delta (delta
    -2..2) with weight ``table[o % s, delta + 2]`` > 0 inside the map, and the
    offsets u - q of the output's centre u = (o + 0.5) / s - 0.5 from them."""
    o = np.arange(n_lr * s)
    q = (o // s)[:, None] + np.arange(5)[None, :] - 2
    a = table[o % s]
    n, (qq, aa) = compact_taps((a > 0) & (q >= 0) & (q < n_lr), q, a)
    off = ((o + 0.5) / s - 0.5)[:, None] - qq
    off[np.arange(qq.shape[1])[None, :] >= n[:, None]] = 0
    return qq.astype(np.int64), aa.astype(np.float32), n, np.ascontiguousarray(off, np.float32)


def _guide_net(model, dtype) -> GuideNet:
    return GuideNet(
        np.float32(1.0 / np.iinfo(dtype).max),
        np.ascontiguousarray(model.range_scale, np.float32),
        np.ascontiguousarray(model.guide_w1.transpose(2, 3, 1, 0), np.float32),
        np.ascontiguousarray(model.guide_b1, np.float32),
        np.ascontiguousarray(model.guide_w2[:, :, 0, 0].T, np.float32),
        np.ascontiguousarray(model.guide_b2, np.float32),
    )


def _low_res_branch(model, lrn, valid, gmean):
    """(features (h, w, 3 + feat), values (h, w, 1), weights (h, w), slopes (h, w, 2)
    or None) of the samples. The network runs in bands of ``LR_BAND_ROWS`` rows, each
    with as many rows of margin as it has 3x3 layers (its reach), so that its wide
    hidden layers never exist for the whole map."""
    x0 = np.concatenate([lrn[None], valid[None], gmean.transpose(2, 0, 1)], axis=0).astype(np.float32)
    h = x0.shape[1]
    reach = len(model.lr_weights)
    out = np.empty((h, x0.shape[2], model.head_w.shape[0]), np.float32)

    def f32(a):
        return np.ascontiguousarray(a, np.float32)

    layers = [(f32(w), f32(b), True) for w, b in zip(model.lr_weights, model.lr_biases)]
    layers.append((f32(model.head_w), f32(model.head_b), False))
    for r0 in range(0, h, LR_BAND_ROWS):
        r1 = min(r0 + LR_BAND_ROWS, h)
        a0, a1 = max(r0 - reach, 0), min(r1 + reach, h)
        part = _head(layers, np.ascontiguousarray(x0[:, a0:a1]))
        out[r0:r1] = part[:, r0 - a0 : r1 - a0].transpose(1, 2, 0)
    feat = model.feat
    g = out[..., : 3 + feat].copy()
    g[..., :3] += gmean * model.range_scale
    d = (lrn + out[..., 3 + feat])[..., None]
    c = np.exp(np.clip(out[..., 4 + feat], -10, 10)) * valid
    slopes = np.ascontiguousarray(out[..., 5 + feat : 7 + feat], np.float32) if model.slopes else None
    g, d = np.ascontiguousarray(g, np.float32), np.ascontiguousarray(d, np.float32)
    return g, d, c.astype(np.float32), slopes


def upsample_channel(model, lr, valid, guide, s: int, norm=None) -> np.ndarray:
    """One map channel (h, w) with validity (h, w) to (s h, s w); ``guide`` is
    uint8/uint16 (s h, s w, 3). Holes stay NaN where no valid sample is in reach.
    The network sees the map scaled to [0, 1] by its valid samples' range, or by
    ``norm`` = (lo, hi) when given (a part of a larger map: the whole map's range)."""
    h, w = lr.shape
    v = lr[valid > 0]
    if v.size == 0 and norm is None:
        return np.full((h * s, w * s), np.nan, np.float32)
    lo, hi = (float(v.min()), float(v.max())) if norm is None else (float(norm[0]), float(norm[1]))
    if hi == lo:  # a flat map: nothing to upsample (and no unit to normalise by)
        return np.full((h * s, w * s), lo, np.float32)
    span = hi - lo
    lrn = np.where(valid > 0, (lr - lo) / span, 0).astype(np.float32)
    top = 255.0 if guide.dtype == np.uint8 else 65535.0
    gmean = resize(guide, (h, w), "box") / np.float32(top)
    g, d, c, slopes = _low_res_branch(model, lrn, valid.astype(np.float32), gmean)
    ry, ay, ny, dy = _phase_taps(h, s, model.spatial[s])
    rx, ax, nx, dx = _phase_taps(w, s, model.spatial[s])
    planes = slopes is not None
    if not planes:
        slopes = np.zeros((1, 1, 2), np.float32)
    net = _guide_net(model, guide.dtype)
    spec = K.KernelSpec(K.GAUSSIAN, False, 0.0, 0.0, True, True)
    out = np.empty((h * s, w * s), np.float32)
    rows = min(BAND_ROWS, h * s)
    feats = np.empty((rows, w * s, 3 + model.feat), np.float32)
    yb = np.empty((rows, w * s, 1), np.float32)
    mb = np.empty((rows, w * s), np.float32)
    for r0 in range(0, h * s, BAND_ROWS):
        r1 = min(r0 + BAND_ROWS, h * s)
        n = r1 - r0
        guide_features(guide, r0, net, feats[:n])
        taps = K.Taps(ry[r0:r1], ay[r0:r1], ny[r0:r1], rx, ax, nx)
        rs = K.Resample(d, c, g, feats[:n], np.float32(1.0), planes, slopes, dy[r0:r1], dx)
        K.resample(rs, taps, spec, yb[:n], mb[:n])
        band = out[r0:r1]
        np.multiply(yb[:n, :, 0], np.float32(span), out=band)
        band += np.float32(lo)
        band[mb[:n] == 0] = np.nan
    return out


def pick_scale(model, ratio: float) -> int:
    """The model's scale for an upscale ``ratio``: the smallest one at least as large
    (the output is then resized down), else its largest."""
    above = [s for s in sorted(model.scales) if s >= ratio - 1e-9]
    return above[0] if above else max(model.scales)


def run(model, lowres, guide, size, valid=None, norm=None) -> np.ndarray:
    """Upsample ``lowres`` (h, w) or (h, w, C) (channels one by one, sharing the
    guide's features) to ``size`` guided by ``guide`` (uint8/uint16 (H, W, 3)).
    When ``size`` is not an exact model scale of the map, the model runs at the
    nearest scale above and its result is resized (bicubic). ``norm``: one
    (lo, hi) per channel (see :func:`upsample_channel`)."""
    x = lowres if lowres.ndim == 3 else lowres[..., None]
    h, w = x.shape[:2]
    valid = np.ones((h, w), np.float32) if valid is None else np.asarray(valid, np.float32)
    ratio = max(size[0] / h, size[1] / w)
    s = pick_scale(model, ratio)
    g = guide if guide.ndim == 3 else np.repeat(guide[..., None], 3, axis=2)
    if g.dtype.kind == "f":
        g = (np.clip(g, 0, 1) * 65535 + 0.5).astype(np.uint16)
    if g.shape[:2] != (h * s, w * s):
        top = np.iinfo(g.dtype).max
        g = (np.clip(resize(g, (h * s, w * s), "bilinear"), 0, top) + 0.5).astype(g.dtype)
    g = np.ascontiguousarray(g[:, :, :3])
    outs = []
    for ch in range(x.shape[2]):
        y = upsample_channel(
            model, np.asarray(x[:, :, ch], np.float32), valid, g, s, None if norm is None else norm[ch]
        )
        if y.shape != tuple(size):
            holes = np.isnan(y)
            y, ym = resize(np.where(holes, 0, y), size, "bicubic", mask=(~holes).astype(np.float32))
            y[ym == 0] = np.nan
        outs.append(y)
    return outs[0] if lowres.ndim == 2 else np.stack(outs, axis=2)

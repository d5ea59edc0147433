"""Numba kernels of pixel-adaptive convolution: forward, exact adjoint, transposed
(upsampling) and the separable guided resampler behind JBU and bicubic.

Every kernel evaluates the adaptive kernel K inside its filtering loop, one
output pixel at a time: nothing of size k^2 x H x W is ever made (the unfolded
tensor of the reference code, its users' out-of-memory reports). Each output
row is one unit of work of a ``prange`` loop and is computed from the inputs
only, by the same operations whatever the thread, so results are the same bits
for any thread count. Memory beyond the inputs and the output is O(channels)
per thread (the transposed form adds tap tables of O(k (H + W))).

Semantics (``tests/pac_reference.py`` is the float64 per-pixel statement):

forward    y_i = b + sum_t K(f_c(i), f_j) m_j W[t] x_j,   j = s i - p + d t
           (c(i) the window's centre tap; taps outside the image contribute
           nothing and, with ``normalize``, do not count in sum_t K m_j)
adjoint    the transpose of x -> y - b for fixed f and m
transposed y_o = b + sum_{(q, t): s q + d t - p = o} K(f_o, g_q) m_q W[t]^T x_q
           (``conv_transpose2d``'s tap relation; g_q: the features of sample q)
resample   y_o = sum_{q in window(o)} a_y a_x K(f_o, g_q) m_q x_q / sum(a_y a_x K m)
           with separable, per-output-row/column tap lists (any output size)

K kinds: 0 Gaussian exp(-|df|^2 / 2); 1 "inv" alpha + (|df|^2 + 1e-4)^(lambda/2);
2 constant 1 (plain convolution). ``asym`` takes max(f_j - f_i, 0) per channel.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba as nb
import numpy as np

from pafu_cli._numba import NJIT, NJIT_PARALLEL

GAUSSIAN, INV, ONE = 0, 1, 2

KernelSpec = namedtuple("KernelSpec", ["kind", "asym", "alpha", "lam", "normalize", "masked"])
"""How K is computed (``kind``, ``asym``, ``alpha``, ``lam``: float64) and used:
``normalize`` divides by sum K m; ``masked`` reads the validity mask."""

Geometry = namedtuple("Geometry", ["k", "stride", "dilation", "padding", "groups"])
"""A convolution's shape (int64): kernel size, stride, dilation, zero padding, groups."""

Conv = namedtuple("Conv", ["x", "f", "mask", "w", "bias", "depthwise"])
"""A forward PAC: input (H, W, Cin) float32, features (H, W, Cg) float32, mask
(H, W) float32 (ignored unless masked), weight laid out (k, k, Cin/groups, Cout)
float32, bias (Cout,) float32, ``depthwise`` 1 for pooling (W = 1 per channel)."""

Transposed = namedtuple("Transposed", ["x", "mask", "g", "f", "fscale", "w", "bias", "depthwise"])
"""A transposed PAC: low-res input (h, w, Cin) float32 and mask (h, w) float32,
sample features (h, w, Cg) float32, output-resolution features (H, W, Cg) of any
dtype multiplied by ``fscale`` (so an 8-bit guide is read as it is), weight laid
out (k, k, Cin, Cout/groups) float32, bias (Cout,) float32."""

Taps = namedtuple("Taps", ["ry", "ty", "ny", "rx", "tx", "nx"])
"""Per output row (column) o: ``n[o]`` taps, sample index ``r[o, a]`` and tap
index or weight ``t[o, a]``. For the transposed form these are the phases: all
outputs with the same (o + p) mod s share their tap offsets."""


@nb.njit(inline="always", **NJIT)
def _k_of(d2, spec):
    if spec.kind == GAUSSIAN:
        return math.exp(-0.5 * d2)
    if spec.kind == INV:
        return spec.alpha + (d2 + 1e-4) ** (0.5 * spec.lam)
    return 1.0


@nb.njit(inline="always", **NJIT)
def _dist2(fa, ia, ja, sa, fb, ib, jb, asym):
    """|f_b - sa f_a|^2 over channels (``asym``: of max(f_b - sa f_a, 0)); ``sa``
    scales a raw guide (an 8-bit image read as it is)."""
    d2 = 0.0
    for c in range(fa.shape[2]):
        diff = np.float64(fb[ib, jb, c]) - np.float64(fa[ia, ja, c]) * sa
        if asym and diff < 0.0:
            diff = 0.0
        d2 += diff * diff
    return d2


@nb.njit(inline="always", **NJIT)
def _accumulate(acc, kv, xv, w, ty, tx, ci_local, co0, cout_g):
    for co in range(cout_g):
        acc[co0 + co] += w[ty, tx, ci_local, co0 + co] * kv * xv


@nb.njit(inline="always", **NJIT)
def _forward_window(conv, geo, spec, oy, ox, shift, acc):
    """One output's window: adds sum_t K m W x into ``acc`` (K of d^2 - ``shift``);
    returns (sum K m, whether a valid sample was in it, the smallest d^2)."""
    x, f, m, w = conv.x, conv.f, conv.mask, conv.w
    h, wd, cin = x.shape
    cout = acc.shape[0]
    k, s, d, p, groups = geo.k, geo.stride, geo.dilation, geo.padding, geo.groups
    cin_g = cin // groups
    cout_g = cout // groups
    c = (k - 1) // 2
    cy = oy * s - p + c * d
    cx = ox * s - p + c * d
    norm = 0.0
    seen = False
    d2min = np.inf
    for ty in range(k):
        jy = oy * s - p + ty * d
        if jy < 0 or jy >= h:
            continue
        for tx in range(k):
            jx = ox * s - p + tx * d
            if jx < 0 or jx >= wd:
                continue
            mv = 1.0
            if spec.masked:
                mv = np.float64(m[jy, jx])
                if mv == 0.0:
                    continue
            seen = True
            d2 = _dist2(f, cy, cx, 1.0, f, jy, jx, spec.asym)
            d2min = min(d2min, d2)
            kv = _k_of(d2 - shift, spec) * mv
            norm += kv
            if acc.shape[0] == 0:
                continue
            if conv.depthwise:
                for ch in range(cout):
                    acc[ch] += kv * x[jy, jx, ch]
            else:
                for g in range(groups):
                    for ci in range(cin_g):
                        _accumulate(acc, kv, x[jy, jx, g * cin_g + ci], w, ty, tx, ci, g * cout_g, cout_g)
    return norm, seen, d2min


@nb.njit(inline="always", **NJIT)
def _underflow(spec, norm, seen):
    """A normalised Gaussian window whose weights all underflowed (features far
    apart): it is recomputed relative to its nearest feature (the same
    normalised weights, exp(-(d^2 - min d^2) / 2))."""
    return spec.normalize and spec.kind == GAUSSIAN and seen and norm == 0.0


@nb.njit(**NJIT_PARALLEL)
def forward(conv, geo, spec, y, ymask):
    """PAC forward into ``y`` (Ho, Wo, Cout) and, when masked, ``ymask`` (Ho, Wo):
    1 where the window held a valid sample."""
    ho, wo, cout = y.shape
    for oy in nb.prange(ho):
        acc = np.empty(cout, np.float64)
        for ox in range(wo):
            acc[:] = 0.0
            norm, seen, d2min = _forward_window(conv, geo, spec, oy, ox, 0.0, acc)
            if _underflow(spec, norm, seen):
                acc[:] = 0.0
                norm, seen, d2min = _forward_window(conv, geo, spec, oy, ox, d2min, acc)
            scale = 1.0
            if spec.normalize:
                scale = 1.0 / norm if norm > 0.0 else 0.0
            for co in range(cout):
                y[oy, ox, co] = acc[co] * scale + conv.bias[co]
            if spec.masked:
                ymask[oy, ox] = 1.0 if seen else 0.0


@nb.njit(**NJIT_PARALLEL)
def window_norms(conv, geo, spec, ho, wo):
    """The forward's normaliser sum_t K m of each output's window and the shift its
    K was computed with (0, or the window's smallest d^2 after an underflow):
    two (ho, wo) float64 arrays."""
    norms = np.zeros((ho, wo), np.float64)
    shifts = np.zeros((ho, wo), np.float64)
    none = np.empty(0, np.float64)
    for oy in nb.prange(ho):
        for ox in range(wo):
            norm, seen, d2min = _forward_window(conv, geo, spec, oy, ox, 0.0, none)
            if _underflow(spec, norm, seen):
                shifts[oy, ox] = d2min
                norm, seen, d2min = _forward_window(conv, geo, spec, oy, ox, shifts[oy, ox], none)
            norms[oy, ox] = norm
    return norms, shifts


@nb.njit(**NJIT_PARALLEL)
def adjoint(conv, geo, spec, g, norms, shifts, xt):
    """The adjoint of the forward (bias left out): ``g`` (Ho, Wo, Cout) -> ``xt``
    (H, W, Cin), gathered per input pixel (no scatter, no race): input j receives
    from every output i whose window holds j at tap t (s i = j + p - d t)."""
    f, m, w = conv.f, conv.mask, conv.w
    h, wd, cin = xt.shape
    ho, wo, cout = g.shape
    k, s, d, p, groups = geo.k, geo.stride, geo.dilation, geo.padding, geo.groups
    cin_g = cin // groups
    cout_g = cout // groups
    c = (k - 1) // 2
    for jy in nb.prange(h):
        acc = np.empty(cin, np.float64)
        for jx in range(wd):
            acc[:] = 0.0
            mv = np.float64(m[jy, jx]) if spec.masked else 1.0
            if mv != 0.0:
                for ty in range(k):
                    ny = jy + p - ty * d
                    if ny < 0 or ny % s != 0 or ny // s >= ho:
                        continue
                    oy = ny // s
                    for tx in range(k):
                        nx = jx + p - tx * d
                        if nx < 0 or nx % s != 0 or nx // s >= wo:
                            continue
                        ox = nx // s
                        d2 = _dist2(f, oy * s - p + c * d, ox * s - p + c * d, 1.0, f, jy, jx, spec.asym)
                        kv = _k_of(d2 - shifts[oy, ox], spec) * mv
                        if spec.normalize:
                            nv = norms[oy, ox]
                            kv = kv / nv if nv > 0.0 else 0.0
                        if conv.depthwise:
                            for ch in range(cin):
                                acc[ch] += kv * g[oy, ox, ch]
                        else:
                            for gr in range(groups):
                                for ci in range(cin_g):
                                    t = 0.0
                                    for co in range(cout_g):
                                        t += w[ty, tx, ci, gr * cout_g + co] * g[oy, ox, gr * cout_g + co]
                                    acc[gr * cin_g + ci] += kv * t
            for ch in range(cin):
                xt[jy, jx, ch] = acc[ch]


@nb.njit(inline="always", **NJIT)
def _transposed_window(tr, taps, spec, groups, oy, ox, shift, acc):
    """One output of the transposed form: adds sum K m W^T x into ``acc``; returns
    (sum K m, whether a valid sample contributed, the smallest d^2)."""
    x, m, gq, f, w = tr.x, tr.mask, tr.g, tr.f, tr.w
    cout = acc.shape[0]
    cin = x.shape[2]
    cin_g = cin // groups
    cout_g = cout // groups
    norm = 0.0
    seen = False
    d2min = np.inf
    for a in range(taps.ny[oy]):
        qy = taps.ry[oy, a]
        ty = taps.ty[oy, a]
        for b in range(taps.nx[ox]):
            qx = taps.rx[ox, b]
            tx = taps.tx[ox, b]
            mv = 1.0
            if spec.masked:
                mv = np.float64(m[qy, qx])
                if mv == 0.0:
                    continue
            seen = True
            d2 = _dist2(f, oy, ox, tr.fscale, gq, qy, qx, spec.asym)
            d2min = min(d2min, d2)
            kv = _k_of(d2 - shift, spec) * mv
            norm += kv
            if tr.depthwise:
                for ch in range(cout):
                    acc[ch] += kv * x[qy, qx, ch]
            else:
                for gr in range(groups):
                    for ci in range(cin_g):
                        xv = x[qy, qx, gr * cin_g + ci]
                        for co in range(cout_g):
                            acc[gr * cout_g + co] += w[ty, tx, gr * cin_g + ci, co] * kv * xv
    return norm, seen, d2min


@nb.njit(**NJIT_PARALLEL)
def transposed(tr, taps, spec, groups, y, ymask):
    """Transposed PAC into ``y`` (H, W, Cout), one phase table per output row and column."""
    ho, wo, cout = y.shape
    for oy in nb.prange(ho):
        acc = np.empty(cout, np.float64)
        for ox in range(wo):
            acc[:] = 0.0
            norm, seen, d2min = _transposed_window(tr, taps, spec, groups, oy, ox, 0.0, acc)
            if _underflow(spec, norm, seen):
                acc[:] = 0.0
                norm, seen, d2min = _transposed_window(tr, taps, spec, groups, oy, ox, d2min, acc)
            scale = 1.0
            if spec.normalize:
                scale = 1.0 / norm if norm > 0.0 else 0.0
            for co in range(cout):
                y[oy, ox, co] = acc[co] * scale + tr.bias[co]
            if spec.masked:
                ymask[oy, ox] = 1.0 if seen else 0.0


Resample = namedtuple("Resample", ["x", "mask", "g", "f", "fscale", "planes", "slope", "dy", "dx"])
"""A guided resampling: low-res map (h, w, C) float32 and mask (h, w) float32,
sample features (h, w, Cg) float32, guide (H, W, Cg) of any dtype read times
``fscale`` (float32). With ``planes`` True each sample q stands for the plane
``x_q + slope_q . (u - q)``: ``slope`` (h, w, 2 C) float32 (y then x per channel),
``dy``/``dx`` the offsets u - q of each row / column tap (shaped as the taps'
weights); otherwise they are unused (any float32 arrays)."""


@nb.njit(inline="always", **NJIT)
def _window(rs, taps, spec, oy, ox, fo, shift, acc, accp):
    """One output pixel's weighted sums (see :func:`resample`); returns (norm,
    positive norm, whether a sample was missing). ``shift`` is subtracted from
    every squared feature distance (0, or the window's minimum)."""
    x, m, gq = rs.x, rs.mask, rs.g
    nc = acc.shape[0]
    cg = fo.shape[0]
    # Only the unguided kernels (bicubic) have negative weights; the positive-only
    # sums used next to holes are needed for them alone.
    negative = spec.masked and spec.kind == ONE
    acc[:] = 0.0
    accp[:] = 0.0
    norm = np.float32(0.0)
    normp = np.float32(0.0)
    holes = False
    for a in range(taps.ny[oy]):
        qy = taps.ry[oy, a]
        wy = taps.ty[oy, a]
        for b in range(taps.nx[ox]):
            qx = taps.rx[ox, b]
            wv = wy * taps.tx[ox, b]
            if spec.masked:
                mv = m[qy, qx]
                if mv == 0.0:
                    holes = True
                    continue
                wv *= mv
            if spec.kind == GAUSSIAN:
                d2 = np.float32(0.0)
                for c in range(cg):
                    diff = gq[qy, qx, c] - fo[c]
                    d2 += diff * diff
                wv *= np.float32(math.exp(np.float32(-0.5) * (d2 - shift)))
            norm += wv
            if rs.planes:
                dyv = rs.dy[oy, a]
                dxv = rs.dx[ox, b]
                for c in range(nc):
                    v = x[qy, qx, c] + rs.slope[qy, qx, 2 * c] * dyv + rs.slope[qy, qx, 2 * c + 1] * dxv
                    acc[c] += wv * v
                    if negative and wv > 0.0:
                        accp[c] += wv * v
                if negative and wv > 0.0:
                    normp += wv
                continue
            if nc == 1:
                acc[0] += wv * x[qy, qx, 0]
            else:
                for c in range(nc):
                    acc[c] += wv * x[qy, qx, c]
            if negative and wv > 0.0:
                normp += wv
                for c in range(nc):
                    accp[c] += wv * x[qy, qx, c]
    if not negative:  # every weight >= 0: the positive sums are the sums
        normp = norm
        for c in range(nc):
            accp[c] = acc[c]
    return norm, normp, holes


@nb.njit(inline="always", **NJIT)
def _min_dist2(rs, taps, spec, oy, ox, fo):
    """The smallest squared feature distance to a valid sample of the window."""
    best = np.float32(np.inf)
    for a in range(taps.ny[oy]):
        qy = taps.ry[oy, a]
        for b in range(taps.nx[ox]):
            qx = taps.rx[ox, b]
            if spec.masked and rs.mask[qy, qx] == 0.0:
                continue
            d2 = np.float32(0.0)
            for c in range(fo.shape[0]):
                diff = rs.g[qy, qx, c] - fo[c]
                d2 += diff * diff
            best = min(best, d2)
    return best


@nb.njit(**NJIT_PARALLEL)
def resample(rs, taps, spec, y, ymask):
    """Separable guided resampling into ``y`` (H, W, C), float32 arithmetic.

    ``taps.ty``/``taps.tx`` hold the spatial weights a_y, a_x (float32). When the
    guide's colour at an output pixel is far from every sample's, the range
    weights would underflow (0 / 0): that window is recomputed with
    exp(-(d^2 - min d^2) / 2), the same normalised weights without underflow
    (the common factor cancels). With a mask, a window with a missing sample
    uses only the positive weights (renormalised), so that kernels with
    negative lobes (bicubic) stay bounded next to holes; where every sample is
    missing, ``ymask`` is 0 and y is 0.
    """
    f = rs.f
    ho, wo, nc = y.shape
    cg = f.shape[2]
    sa = rs.fscale
    gauss = spec.kind == GAUSSIAN
    tiny = np.float32(1e-30)
    for oy in nb.prange(ho):
        acc = np.empty(nc, np.float32)
        accp = np.empty(nc, np.float32)
        fo = np.zeros(cg, np.float32)
        for ox in range(wo):
            if gauss:
                for c in range(cg):
                    fo[c] = np.float32(f[oy, ox, c]) * sa
            norm, normp, holes = _window(rs, taps, spec, oy, ox, fo, np.float32(0.0), acc, accp)
            if gauss and (normp if holes else norm) < tiny:
                shift = _min_dist2(rs, taps, spec, oy, ox, fo)
                if shift < np.inf:
                    norm, normp, holes = _window(rs, taps, spec, oy, ox, fo, shift, acc, accp)
            if holes:
                norm = normp
                for c in range(nc):
                    acc[c] = accp[c]
            inv = np.float32(1.0) / norm if norm > 0.0 else np.float32(0.0)
            for c in range(nc):
                y[oy, ox, c] = acc[c] * inv
            if spec.masked:
                ymask[oy, ox] = 1.0 if norm > 0.0 else 0.0

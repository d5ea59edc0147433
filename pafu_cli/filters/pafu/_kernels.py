"""Numba kernels of the inference engine: pure array-in/array-out, no I/O.

Layout is HWC float32 throughout: images are ``(H, W, C)``, convolution weights
are ``(k, k, C_in, C_out)`` so the innermost loop runs over contiguous output
channels. Borders use reflection (``numpy.pad(mode="reflect")``, repeated for
pads larger than the image). Every kernel has exactly one ``prange``, over
output rows, and each iteration writes only its own rows, so results are the
same bits for any thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_NJIT = dict(nogil=True, cache=True)


_NJIT_PARALLEL = dict(_NJIT, parallel=True)


@nb.njit(inline="always", **_NJIT)
def _reflect(i, n):
    """Index ``i`` mirrored into ``[0, n)`` without repeating the edge sample."""
    if 0 <= i < n:  # the common case, without the integer division below
        return i
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = i % period
    if i < 0:
        i += period
    if i >= n:
        i = period - i
    return i


@nb.njit(inline="always", **_NJIT)
def _conv_at(x, wt, bias, y, xx, acc):
    """``acc[o] = bias[o] + sum_{dy,dx,c} wt[dy, dx, c, o] * x(y+dy-r, xx+dx-r, c)``, reflected."""
    h, w, ci = x.shape
    k = wt.shape[0]
    co = wt.shape[3]
    r = (k - 1) // 2
    for o in range(co):
        acc[o] = bias[o]
    for dy in range(k):
        yy = _reflect(y + dy - r, h)
        for dx in range(k):
            xs = _reflect(xx + dx - r, w)
            for c in range(ci):
                v = x[yy, xs, c]
                for o in range(co):
                    acc[o] += v * wt[dy, dx, c, o]


@nb.njit(**_NJIT_PARALLEL)
def conv2d(x, wt, bias, relu, out):
    """'Same' convolution with reflected borders, optional ReLU.

    ``out[y, x, o] = act(bias[o] + sum_{dy,dx,c} wt[dy, dx, c, o] * x[y+dy-r, x+dx-r, c])``
    with ``r = (k - 1) // 2``. ``x`` (H, W, Ci), ``wt`` (k, k, Ci, Co), ``bias``
    (Co,), ``out`` (H, W, Co); all float32, ``k`` odd.
    """
    h, w, _ = x.shape
    co = wt.shape[3]
    for y in nb.prange(h):
        acc = np.empty(co, dtype=np.float32)
        for xx in range(w):
            _conv_at(x, wt, bias, y, xx, acc)
            for o in range(co):
                a = acc[o]
                if relu and a < 0:
                    a = 0.0
                out[y, xx, o] = a


@nb.njit(inline="always", **_NJIT)
def _top2_weight(best, second):
    """Softmax weight of the larger of two logits: ``1 / (1 + exp(second - best))``."""
    return np.float32(1.0) / (np.float32(1.0) + np.exp(np.float32(second - best)))


@nb.njit(**_NJIT_PARALLEL)
def conv2d_select(x, wt, bias, mix, out_idx, out_idx2, out_wt):
    """Last selector layer fused with the per-pixel choice.

    Same convolution as :func:`conv2d` without activation; writes
    ``out_idx[y, x] = argmax_o logits[y, x, o]`` (int32, first maximum wins)
    instead of the logits; with ``mix`` 2 also ``out_idx2``, the argmax of the
    other logits (first of equal ones), and ``out_wt``, the softmax weight of
    ``out_idx`` among the two (float32).
    """
    h, w, _ = x.shape
    co = wt.shape[3]
    for y in nb.prange(h):
        acc = np.empty(co, dtype=np.float32)
        for xx in range(w):
            _conv_at(x, wt, bias, y, xx, acc)
            best = 0
            for o in range(1, co):
                if acc[o] > acc[best]:
                    best = o
            out_idx[y, xx] = best
            if mix == 2:
                second = 1 if best == 0 else 0
                for o in range(second + 1, co):
                    if o != best and acc[o] > acc[second]:
                        second = o
                out_idx2[y, xx] = second
                out_wt[y, xx] = _top2_weight(acc[best], acc[second])


@nb.njit(inline="always", **_NJIT)
def _apply_one(x, bank, z, r, big_r, y, xx, acc):
    """``acc[o] = sum_{dy,dx,c} bank[z, dy, dx, c, o] * x(y+dy-R, xx+dx-R, c)`` over
    the taps within radius ``r`` of the centre, reflected."""
    h, w, ci = x.shape
    co = bank.shape[4]
    for o in range(co):
        acc[o] = 0.0
    for dy in range(big_r - r, big_r + r + 1):
        yy = _reflect(y + dy - big_r, h)
        for dx in range(big_r - r, big_r + r + 1):
            xs = _reflect(xx + dx - big_r, w)
            for c in range(ci):
                v = x[yy, xs, c]
                for o in range(co):
                    acc[o] += v * bank[z, dy, dx, c, o]


@nb.njit(**_NJIT_PARALLEL)
def apply_bank(x, idx, mix, idx2, wt, bank, radii, out):
    """Apply the selected kernel at every pixel.

    ``out[y, x, o] = sum_{dy,dx,c} bank[z, dy, dx, c, o] * x[y+dy-R, x+dx-R, c]``
    with ``z = idx[y, x]`` and ``R = (K - 1) // 2``; only taps within the
    kernel's own radius ``radii[z]`` are visited (the rest are zero). With
    ``mix`` 2 the output is ``wt r_z + (1 - wt) r_z2`` with ``r_z2`` the same
    sum for kernel ``z2 = idx2[y, x]`` and ``wt = wt[y, x]``.
    ``x`` (H, W, Ci), ``idx`` (H, W) int32, ``bank`` (n, K, K, Ci, Co),
    ``radii`` (n,) int32, ``out`` (H, W, Co).
    """
    h, w, ci = x.shape
    big_k = bank.shape[1]
    co = bank.shape[4]
    big_r = (big_k - 1) // 2
    for y in nb.prange(h):
        acc = np.empty(co, dtype=np.float32)
        acc2 = np.empty(co, dtype=np.float32)
        for xx in range(w):
            z = idx[y, xx]
            _apply_one(x, bank, z, radii[z], big_r, y, xx, acc)
            if mix == 2:
                z2 = idx2[y, xx]
                _apply_one(x, bank, z2, radii[z2], big_r, y, xx, acc2)
                a = wt[y, xx]
                for o in range(co):
                    out[y, xx, o] = a * acc[o] + (np.float32(1.0) - a) * acc2[o]
            else:
                for o in range(co):
                    out[y, xx, o] = acc[o]


@nb.njit(**_NJIT_PARALLEL)
def depth_to_space(y, s, out):
    """Rearrange ``(H, W, C*s*s)`` into ``(H*s, W*s, C)``.

    Channel ``c*s*s + dy*s + dx`` goes to ``out[i*s + dy, j*s + dx, c]``
    (PyTorch's ``pixel_shuffle`` order).
    """
    h, w, cs = y.shape
    c_out = cs // (s * s)
    for i in nb.prange(h):
        for dy in range(s):
            for j in range(w):
                for dx in range(s):
                    for c in range(c_out):
                        out[i * s + dy, j * s + dx, c] = y[i, j, c * s * s + dy * s + dx]


@nb.njit(**_NJIT_PARALLEL)
def pack_bayer(mosaic, out):
    """Pack an RGGB-phased ``(2H, 2W)`` mosaic into ``(H, W, 4)`` quads.

    Channels are the quad positions in raster order: (0,0)=R, (0,1)=G1,
    (1,0)=G2, (1,1)=B.
    """
    h, w, _ = out.shape
    for i in nb.prange(h):
        for j in range(w):
            out[i, j, 0] = mosaic[2 * i, 2 * j]
            out[i, j, 1] = mosaic[2 * i, 2 * j + 1]
            out[i, j, 2] = mosaic[2 * i + 1, 2 * j]
            out[i, j, 3] = mosaic[2 * i + 1, 2 * j + 1]

"""Banded, planar Numba engine: the whole model (selector, per-pixel choice,
kernel apply, depth-to-space) runs on one band of rows at a time. It is the
only engine, for every image size.

Why bands: a layer-by-layer engine keeps every selector activation of the
whole image in memory (24 channels x 6 MP x 4 bytes = 576 MB per layer for a
24 MP demosaick) and its per-pixel loops over a few channels vectorise poorly.
Here every band is processed by one thread from start to end in small buffers
that stay in cache, and the convolutions are planar (channel, row, column) so
the innermost loop runs over a tile of columns with all taps of a 3x3 kernel in
one pass (SIMD over pixels).

Semantics (``tests/reference.py`` is the plain-NumPy statement): the selector's
input is ``(x - mean) * scale``; every selector layer pads its input by
reflection (``numpy.pad(mode="reflect")``, repeated when the pad exceeds the
image, see :func:`pafu_cli._numba.reflect`), hidden layers end with ReLU; the
last layer's logits give each pixel its kernel (the first maximum wins), or
with ``mix`` 2 its two best kernels and the softmax weight of the first
(:func:`pafu_cli.filters.pafu._simd.choice_update`); the bank is applied to the
reflect-padded *input* (not normalised), only each kernel's own support
visited (a ``pafunet`` model's kernels also read the last hidden
layer, ``fr`` reflected rows and columns around each pixel, as extra taps);
depth-to-space by ``s`` in PyTorch ``pixel_shuffle`` order. Each band
writes only its own output rows and every output value is computed by the same
operations whatever the band, so results are the same bits for any thread
count and band size.

Arguments are grouped: :class:`Plan` (the run's geometry, int64 fields),
:class:`Weights` (the model's arrays), :class:`Source` (the input),
:class:`Outputs` (the arrays written), :class:`Band` (a planar band buffer and
the image row of its first row), :class:`Scratch` (one thread's buffers).
Selector weights travel as one flat float32 array plus a metadata table
(``meta[l] = (c_out, c_in, k, weight offset, bias offset)``) so that models of
any depth use the same compiled function. The 16-lane kernels come from
:mod:`pafu_cli.filters.pafu._simd` as the IR or the portable code, picked by
the type of the ``simd`` argument that runs down from :func:`run_bands`.

Numba's on-disk cache checks only the source file of each cached function, and
the functions here inline code of ``_simd.py`` and ``pafu_cli/_numba.py``: after
editing those, delete this package's ``__pycache__/*.nbi`` and ``*.nbc`` (or
touch this file), or stale compiled code runs.
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from pafu_cli import _cache
from pafu_cli._numba import NJIT_CONTRACT, NJIT_CONTRACT_PARALLEL, reflect
from pafu_cli.filters.pafu import _simd
from pafu_cli.filters.pafu._simd import (
    CONV_OUT,
    LANES,
    SIMD_OFF,
    SIMD_ON,
    choice_start,
    choice_update,
    conv1_4x16,
    conv1_argmax_16,
    conv1_top2_16,
    conv3_4x16,
    dot4x16,
    top2_weight,
)

TILE = 256  # columns per inner-loop tile: a row of accumulators stays in L1


STAGES = 5  # input fill, hidden selector layers, choice, bank input fill, kernel apply


Plan = namedtuple(
    "Plan",
    [
        "h",  # rows of the model input (quads for a mosaic)
        "w",  # columns of the model input
        "ci",  # input channels (4 for a mosaic)
        "bayer",  # 1: the input is read from Source.cfa as packed RGGB quads
        "ctop",  # rows of the mosaic's reflected padding above it (Bayer input)
        "cleft",  # columns of that padding left of it
        "s",  # depth-to-space factor
        "top",  # first row of the output window in the s-times larger result
        "left",  # first column of that window
        "band",  # rows per band
        "mix",  # 1: argmax kernel; 2: the top two, blended
        "big_r",  # bank radius, (K - 1) / 2
        "pad",  # column pad of the selector buffers: max(1, largest layer radius)
        "cmax",  # channels of the selector buffers: max(c_in, widest layer)
        "stages",  # stages run per band, STAGES for all (fewer: profiling)
        "simd",  # 1: the IR kernels of _simd; 0: the portable ones (the same bits)
        "fc",  # pafunet: channels of the last hidden layer the kernels also read (0: none)
        "fr",  # pafunet: radius of those feature taps (<= big_r and <= pad)
    ],
)
Plan.__doc__ = "Geometry of one engine run (all int64); see the field comments in the source."


Weights = namedtuple("Weights", ["mean", "scale", "wf", "bf", "meta", "bank", "table"])
Weights.__doc__ = """The model's arrays: selector input ``mean``, ``scale`` (C_in,) float32;
flat selector weights ``wf`` and biases ``bf`` float32 with ``meta`` (L, 5) int64;
``bank`` (n, T, C_pad) float32 and ``table`` (C_out, 4) int64 as
:func:`pafu_cli.filters.pafu.engine._apply_layout` makes them."""


Source = namedtuple("Source", ["x", "cfa"])
Source.__doc__ = """The input: ``x`` (H, W, C_in) float32, or with ``Plan.bayer`` the mosaic
``cfa`` (h, w) float32 (the other one is an empty placeholder)."""


Outputs = namedtuple("Outputs", ["out", "idx", "idx2", "wt"])
Outputs.__doc__ = """Written by the engine: ``out`` the output window (rows, columns,
C_out / s^2) float32; ``idx`` (H, W) int32 the (first) kernel of every pixel;
with ``mix`` 2 ``idx2`` (H, W) int32 the second and ``wt`` (H, W) float32 the
first one's weight (else empty placeholders, not touched)."""


Band = namedtuple("Band", ["buf", "v0"])
Band.__doc__ = """A planar band buffer ``buf`` (C, rows, pad + W + pad) float32 whose row 0
is image row ``v0`` and whose column ``pad + j`` is image column j."""


Scratch = namedtuple("Scratch", ["a", "b", "raw", "acc"])
Scratch.__doc__ = """One thread's buffers, reused band after band: flat float32 ``a``, ``b``
(selector layers, alternately source and destination), ``raw`` (the bank's
input) and ``acc`` (TILE,)."""


@nb.njit(**NJIT_CONTRACT)
def _fill_input(x, plan, wts, dst, nrows, pad, normalise):
    """``dst.buf[c, i, pad + j] = x[reflect(dst.v0 + i), reflect(j), c]`` for i < nrows,
    j in [-pad, W + pad); ``(x - mean[c]) * scale[c]`` if ``normalise``."""
    h, w, ci = plan.h, plan.w, plan.ci
    mean, scale, buf = wts.mean, wts.scale, dst.buf
    for i in range(nrows):
        yy = reflect(dst.v0 + i, h)
        for j in range(-pad, w + pad):
            xs = reflect(j, w)
            for c in range(ci):
                v = x[yy, xs, c]
                if normalise:
                    v = (v - mean[c]) * scale[c]
                buf[c, i, pad + j] = v


@nb.njit(**NJIT_CONTRACT)
def _fill_bayer(cfa, plan, wts, dst, nrows, pad, normalise):
    """As :func:`_fill_input` for the packed RGGB quads of a mosaic, without
    materialising them: quad (i, j) channel ch (R, G1, G2, B) is sample ``(2i +
    ch // 2, 2j + ch % 2)`` of the mosaic reflect-padded by ``(ctop, cleft)``,
    in a packed image of ``h x w`` quads (as :func:`pafu_cli.cfa.to_packed_rggb`)."""
    h, w = cfa.shape
    hq, wq, top, left = plan.h, plan.w, plan.ctop, plan.cleft
    mean, scale, buf = wts.mean, wts.scale, dst.buf
    for i in range(nrows):
        qi = reflect(dst.v0 + i, hq)
        for ch in range(4):
            yy = reflect(2 * qi + ch // 2 - top, h)
            for j in range(-pad, wq + pad):
                qj = reflect(j, wq)
                v = cfa[yy, reflect(2 * qj + ch % 2 - left, w)]
                if normalise:
                    v = (v - mean[ch]) * scale[ch]
                buf[ch, i, pad + j] = v


@nb.njit(**NJIT_CONTRACT)
def fill_band(src, plan, wts, dst, nrows, pad, normalise):
    """Input rows ``dst.v0 .. dst.v0 + nrows`` into band ``dst`` with ``pad``
    reflected columns each side (:func:`_fill_input` or :func:`_fill_bayer`)."""
    if plan.bayer:
        _fill_bayer(src.cfa, plan, wts, dst, nrows, pad, normalise)
    else:
        _fill_input(src.x, plan, wts, dst, nrows, pad, normalise)


@nb.njit(**NJIT_CONTRACT)
def _reflect_pads(dst, co, nrows, plan):
    """Fill the rows of band ``dst`` outside the image and its column pads by
    reflection of its computed (in-image) part: ``buf[c, i, pad + j] = buf[c,
    reflect(v0 + i) - v0, pad + reflect(j)]``.

    Exact for any image size: the band's computed rows are the in-image rows of
    ``[y0 - m, y1 + m)`` (band ``[y0, y1)``, this layer's row margin m, rows
    ``v0 .. v0 + nrows``), and the reflection of every outside row lies among
    them. (For v < 0: if ``h <= y1 + m`` every image row is computed, else ``-v
    <= m - y0 < y1 + m`` and -v < h, one fold. For v >= h symmetrically.) The
    column pads read in-image columns only, with the repeated reflection.
    """
    buf, v0 = dst.buf, dst.v0
    h, w, pad = plan.h, plan.w, plan.pad
    for i in range(nrows):
        v = v0 + i
        if v < 0 or v >= h:
            src = reflect(v, h) - v0
            for c in range(co):
                for j in range(w):
                    buf[c, i, pad + j] = buf[c, src, pad + j]
    for c in range(co):
        for i in range(nrows):
            for q in range(1, pad + 1):
                buf[c, i, pad - q] = buf[c, i, pad + reflect(-q, w)]
                buf[c, i, pad + w - 1 + q] = buf[c, i, pad + reflect(w - 1 + q, w)]


@nb.njit(inline="always", **NJIT_CONTRACT)
def _tile_span(t0, w):
    """(first column, width) of the column tile that starts at ``t0``. A last tile
    narrower than LANES, of a row at least LANES wide, starts LANES before the
    row's end instead (recomputing a few columns): every column then goes
    through the 16-lane kernels, whose sums round unlike the scalar tile's, and
    a window or chunk of an image gets the image's bits whatever its width."""
    tj = min(TILE, w - t0)
    if tj < LANES <= w:
        return w - LANES, LANES
    return t0, tj


@nb.njit(**NJIT_CONTRACT)
def _conv_tile(src, at, wf, lay, o, acc):
    """``acc[:tj] += sum_{c,dy,dx} w[o, c, dy, dx] * src[c, row0 + dy, col0 + j + dx]``
    with ``at = (row0, col0, tj)`` and ``lay = meta[l]`` (weights at ``wf[woff:]``
    in (o, c, dy, dx) order); LLVM may contract the products and sums into
    fused multiply-adds."""
    row0, base, tj = at
    ci, k, woff = lay[1], lay[2], lay[3]
    if k == 3:
        for c in range(ci):
            wo = woff + (o * ci + c) * 9
            w00 = wf[wo]
            w01 = wf[wo + 1]
            w02 = wf[wo + 2]
            w10 = wf[wo + 3]
            w11 = wf[wo + 4]
            w12 = wf[wo + 5]
            w20 = wf[wo + 6]
            w21 = wf[wo + 7]
            w22 = wf[wo + 8]
            # Views that start at the tile: indices below are provably >= 0, so
            # Numba's negative-index wraparound drops out and the loop vectorises.
            s0 = src[c, row0, base:]
            s1 = src[c, row0 + 1, base:]
            s2 = src[c, row0 + 2, base:]
            for j in range(tj):
                acc[j] += (
                    w00 * s0[j]
                    + w01 * s0[j + 1]
                    + w02 * s0[j + 2]
                    + w10 * s1[j]
                    + w11 * s1[j + 1]
                    + w12 * s1[j + 2]
                    + w20 * s2[j]
                    + w21 * s2[j + 1]
                    + w22 * s2[j + 2]
                )
    elif k == 1:
        c = 0
        while c + 4 <= ci:
            wo = woff + o * ci + c
            w0 = wf[wo]
            w1 = wf[wo + 1]
            w2 = wf[wo + 2]
            w3 = wf[wo + 3]
            s0 = src[c, row0, base:]
            s1 = src[c + 1, row0, base:]
            s2 = src[c + 2, row0, base:]
            s3 = src[c + 3, row0, base:]
            for j in range(tj):
                acc[j] += w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j]
            c += 4
        while c < ci:
            w0 = wf[woff + o * ci + c]
            s0 = src[c, row0, base:]
            for j in range(tj):
                acc[j] += w0 * s0[j]
            c += 1
    else:
        for c in range(ci):
            for dy in range(k):
                for dx in range(k):
                    wv = wf[woff + ((o * ci + c) * k + dy) * k + dx]
                    sv = src[c, row0 + dy, base + dx :]
                    for j in range(tj):
                        acc[j] += wv * sv[j]


@nb.njit(**NJIT_CONTRACT)
def _output_tile(src, at, wts, lay, o, acc):
    """``acc[:tj]`` = output channel ``o`` of the selector layer ``lay`` (bias plus
    :func:`_conv_tile`, no activation) for one column tile ``at`` of one row."""
    bias = wts.bf[lay[4] + o]
    for j in range(at[2]):
        acc[j] = bias
    _conv_tile(src, at, wts.wf, lay, o, acc)


@nb.njit(inline="always", **NJIT_CONTRACT)
def _vec_tile(src, at, wts, lay, o0, relu, dst, dat, simd):
    """Outputs ``o0 .. o0 + 3`` of the selector layer ``lay`` (bias plus
    convolution, ReLU if ``relu``) for one column tile ``at = (row0, col0, tj)``
    of one row, 16 pixels per call of the 16-lane kernels (``conv_4x16``); output
    o, column j goes to ``dst[d_base + o d_ostride + j]`` with ``dat = (d_base,
    d_ostride)``. Needs ``tj >= 16`` (the last vector overlaps the previous one)
    and k in (1, 3). Beyond the layer's last channel, the last channel is
    computed again."""
    co, ci, k, woff, boff = lay[0], lay[1], lay[2], lay[3], lay[4]
    row0, col0, tj = at
    d_base, d_ostride = dat
    srcf = src.ravel()
    c_stride = src.shape[1] * src.shape[2]
    r_stride = src.shape[2]
    oa, ob, oc, od = o0, min(o0 + 1, co - 1), min(o0 + 2, co - 1), min(o0 + 3, co - 1)
    kk = ci * k * k
    ws = (woff + oa * kk, woff + ob * kk, woff + oc * kk, woff + od * kk)
    bs = (boff + oa, boff + ob, boff + oc, boff + od)
    for j in range(0, tj, LANES):
        jj = min(j, tj - LANES)
        s_at = (row0 * r_stride + col0 + jj, c_stride, r_stride, ci)
        ds = (
            d_base + oa * d_ostride + jj,
            d_base + ob * d_ostride + jj,
            d_base + oc * d_ostride + jj,
            d_base + od * d_ostride + jj,
        )
        if k == 3:
            conv3_4x16(simd, srcf, s_at, wts.wf, ws, wts.bf, bs, relu, dst, ds)
        else:
            conv1_4x16(simd, srcf, s_at, wts.wf, ws, wts.bf, bs, relu, dst, ds)


@nb.njit(**NJIT_CONTRACT)
def _conv_layer(src, dst, wts, l, span, plan, acc, simd):
    """Hidden selector layer ``l`` with ReLU for image rows ``span = (v_lo, v_hi)``,
    from band ``src`` into band ``dst`` (columns ``[0, W)``; pads are filled
    afterwards)::

        dst[o, v, j] = max(0, bias[o] + sum_{c,dy,dx} w[o, c, dy, dx] src[c, v + dy - r, j + dx - r])
    """
    lay = wts.meta[l]
    co, k = lay[0], lay[2]
    r = (k - 1) // 2
    w, pad = plan.w, plan.pad
    vec = (k == 1 or k == 3) and w >= LANES
    dstf = dst.buf.ravel()
    d_ostride = dst.buf.shape[1] * dst.buf.shape[2]
    for v in range(span[0], span[1]):
        row0 = v - r - src.v0
        drow = v - dst.v0
        for t0 in range(0, w, TILE):
            j0, tj = _tile_span(t0, w)
            at = (row0, pad - r + j0, tj)
            if vec and tj >= LANES:
                dat = (drow * dst.buf.shape[2] + pad + j0, d_ostride)
                for o0 in range(0, co, CONV_OUT):
                    _vec_tile(src.buf, at, wts, lay, o0, True, dstf, dat, simd)
                continue
            for o in range(co):
                _output_tile(src.buf, at, wts, lay, o, acc)
                d = dst.buf[o, drow]
                for j in range(tj):
                    a = acc[j]
                    d[pad + j0 + j] = a if a > 0 else 0.0


@nb.njit(**NJIT_CONTRACT)
def _choose_rows(src, wts, l, span, plan, outs, acc, simd):
    """The last selector layer ``l`` (logits, no activation) fused with the
    per-pixel choice for image rows ``span = (y0, y1)``: ``outs.idx`` the argmax
    (the first maximum wins); with ``mix`` 2 also ``outs.idx2``, the argmax of
    the other logits, and ``outs.wt``, the softmax weight of ``idx`` among the
    two (:func:`pafu_cli.filters.pafu._simd.choice_update`, :func:`top2_weight`).
    A 1 x 1 layer on 16+ columns keeps logits and choice in registers
    (``conv1_argmax_16`` / ``conv1_top2_16``); else logits go through a tile."""
    lay = wts.meta[l]
    co, ci, k, woff, boff = lay[0], lay[1], lay[2], lay[3], lay[4]
    r = (k - 1) // 2
    w, pad, mix = plan.w, plan.pad, plan.mix
    top2 = mix == 2
    vec = (k == 1 or k == 3) and w >= LANES
    logits = np.empty(co * TILE, dtype=np.float32)
    srcf = src.buf.ravel()
    idx, idx2, wt = outs.idx, outs.idx2, outs.wt
    choice = (idx.ravel(), idx2.ravel(), wt.ravel())
    c_stride = src.buf.shape[1] * src.buf.shape[2]
    for v in range(span[0], span[1]):
        row0 = v - r - src.v0
        if k == 1 and w >= LANES:  # logits and choice in registers, 16 pixels at a time
            for j in range(0, w, LANES):
                jj = min(j, w - LANES)
                at = (row0 * src.buf.shape[2] + pad + jj, c_stride)
                if top2:
                    conv1_top2_16(simd, srcf, at, wts.wf, wts.bf, (ci, co, woff, boff), choice, v * w + jj)
                else:
                    conv1_argmax_16(simd, srcf, at, wts.wf, wts.bf, (ci, co, woff, boff), choice, v * w + jj)
            continue
        for t0 in range(0, w, TILE):
            j0, tj = _tile_span(t0, w)
            at = (row0, pad - r + j0, tj)
            if vec and tj >= LANES:
                for o0 in range(0, co, CONV_OUT):
                    _vec_tile(src.buf, at, wts, lay, o0, False, logits, (0, TILE), simd)
            else:
                for o in range(co):
                    _output_tile(src.buf, at, wts, lay, o, acc)
                    for j in range(tj):
                        logits[o * TILE + j] = acc[j]
            for j in range(tj):
                state = choice_start()
                for o in range(co):
                    state = choice_update(state, logits[o * TILE + j], o, top2)
                idx[v, j0 + j] = state[1]
                if top2:
                    idx2[v, j0 + j] = state[3]
                    wt[v, j0 + j] = top2_weight(state[0], state[2])


@nb.njit(**NJIT_CONTRACT)
def _copy_features(hid, raw, span, plan):
    """A ``pafunet`` model's feature taps: the last hidden layer's band ``hid``
    (its outside rows and column pads already reflected) into channels ``ci ..
    ci + fc`` of the bank's input band ``raw``, rows and columns ``fr`` around
    the image rows ``span``."""
    y0, y1 = span
    w, fr, ci, rp, hp = plan.w, plan.fr, plan.ci, plan.big_r, plan.pad
    for c in range(plan.fc):
        for v in range(y0 - fr, y1 + fr):
            src = hid.buf[c, v - hid.v0]
            dst = raw.buf[ci + c, v - raw.v0]
            for j in range(-fr, w + fr):
                dst[rp + j] = src[hp + j]


@nb.njit(**NJIT_CONTRACT)
def tap_offsets(plan, s_c, s_r):
    """(T,) int64: flat offset of each bank tap from a pixel's top-left tap in
    the bank's input band (strides ``s_c`` per channel, ``s_r`` per row): the
    input's K x K taps of each channel in (c, dy, dx) order, then the ``2 fr +
    1`` square taps of each feature channel, centred the same."""
    k = 2 * plan.big_r + 1
    kf = 2 * plan.fr + 1
    m = plan.big_r - plan.fr
    off = np.empty(plan.ci * k * k + plan.fc * kf * kf, dtype=np.int64)
    t = 0
    for c in range(plan.ci):
        for dy in range(k):
            for dx in range(k):
                off[t] = c * s_c + dy * s_r + dx
                t += 1
    for c in range(plan.ci, plan.ci + plan.fc):
        for dy in range(kf):
            for dx in range(kf):
                off[t] = c * s_c + (dy + m) * s_r + dx + m
                t += 1
    return off


@nb.njit(**NJIT_CONTRACT)
def _apply_rows(raw, wts, span, plan, outs, simd):
    """Apply the selected kernels at image rows ``span = (y0, y1)`` and write
    depth-to-space into ``outs.out``. ``raw`` is the band of the (not
    normalised) input with ``big_r`` reflected rows and columns around it.

    ``wts.bank`` (n, T, C_pad): tap t of kernel z (taps in (c, dy, dx) order
    over the K x K support, zero outside the kernel's own support) holds its C
    computed outputs, zero-padded to C_pad (a multiple of 16). ``wts.table[o] =
    (dy, dx, c, src)``: output o of pixel (v, j) goes to ``out[v s + dy - top,
    j s + dx - left, c]`` when that lies inside ``out``; it is bank output o if
    ``src < 0``, else a copy of input channel ``src`` at the pixel (a
    passthrough output). With ``mix`` 2 a computed output is ``wt r_idx + (1 -
    wt) r_idx2``, the responses of the pixel's two kernels.

    Per column tile of the band, pixels are ordered by their kernel (a counting
    sort), so four pixels with the same kernel share each 16-output weight load
    (:func:`pafu_cli.filters.pafu._simd.dot4x16`) and the kernel's weights stay
    in L1; the results go to a tile buffer in pixel order, then to ``out``.
    Each response is the sequential sum over taps (fused multiply-adds),
    whatever the thread count. With ``mix`` 2 the second kernels are applied in
    a second pass.
    """
    y0, y1 = span
    bank, table, out = wts.bank, wts.table, outs.out
    idx, idx2, wt = outs.idx, outs.idx2, outs.wt
    w, mix, s, top, left, rpad = plan.w, plan.mix, plan.s, plan.top, plan.left, plan.big_r
    co = table.shape[0]
    n_comp = 0
    while n_comp < co and table[n_comp, 3] < 0:
        n_comp += 1
    n, t_len, co_pad = bank.shape
    co_used = -(-n_comp // LANES) * LANES
    wf = bank.ravel()
    rawf = raw.buf.ravel()
    s_c = raw.buf.shape[1] * raw.buf.shape[2]
    s_r = raw.buf.shape[2]
    off = tap_offsets(plan, s_c, s_r)  # flat offset of each tap from a pixel's top-left tap
    rows = y1 - y0
    per_pass = rows * TILE * co_pad
    res = np.empty(mix * per_pass, dtype=np.float32)
    start = np.empty(n + 1, dtype=np.int64)
    order = np.empty(rows * TILE, dtype=np.int64)
    ho, wo = out.shape[0], out.shape[1]
    for j0 in range(0, w, TILE):
        tj = min(TILE, w - j0)
        for ps in range(mix):
            sel = idx if ps == 0 else idx2
            base = ps * per_pass
            start[:] = 0
            for i in range(rows):
                for j in range(tj):
                    start[sel[y0 + i, j0 + j] + 1] += 1
            for z in range(n):
                start[z + 1] += start[z]
            for i in range(rows):  # after this, start[z] is where kernel z's run ends
                for j in range(tj):
                    z = sel[y0 + i, j0 + j]
                    order[start[z]] = i * tj + j
                    start[z] += 1
            g0 = 0
            for z in range(n):
                g1 = start[z]
                for g in range(g0, g1, 4):  # a short last group repeats its last pixel
                    pa = order[g]
                    pb = order[min(g + 1, g1 - 1)]
                    pc = order[min(g + 2, g1 - 1)]
                    pd = order[min(g + 3, g1 - 1)]
                    qs = (
                        (y0 + pa // tj - rpad - raw.v0) * s_r + j0 + pa % tj,
                        (y0 + pb // tj - rpad - raw.v0) * s_r + j0 + pb % tj,
                        (y0 + pc // tj - rpad - raw.v0) * s_r + j0 + pc % tj,
                        (y0 + pd // tj - rpad - raw.v0) * s_r + j0 + pd % tj,
                    )
                    for o0 in range(0, co_used, LANES):
                        ss = (
                            base + pa * co_pad + o0,
                            base + pb * co_pad + o0,
                            base + pc * co_pad + o0,
                            base + pd * co_pad + o0,
                        )
                        dot4x16(simd, rawf, off, qs, wf, z * t_len * co_pad + o0, co_pad, res, ss)
                g0 = g1
        for i in range(rows):
            v = y0 + i
            for o in range(co):
                yy = v * s - top + table[o, 0]
                if yy < 0 or yy >= ho:
                    continue
                dx, c, src = table[o, 1], table[o, 2], table[o, 3]
                for j in range(tj):
                    xx = (j0 + j) * s - left + dx
                    if 0 <= xx < wo:
                        if src >= 0:
                            out[yy, xx, c] = raw.buf[src, v - raw.v0, rpad + j0 + j]
                        elif mix == 2:
                            a = wt[v, j0 + j]
                            q = (i * tj + j) * co_pad + o
                            out[yy, xx, c] = a * res[q] + (np.float32(1.0) - a) * res[per_pass + q]
                        else:
                            out[yy, xx, c] = res[(i * tj + j) * co_pad + o]


@nb.njit(**NJIT_CONTRACT)
def row_margins(meta, fr=0):
    """(L + 1,) int64: ``m[l + 1]`` rows (and columns) of selector layer l's
    output needed beyond a band, ``m[0]`` those of the input: the radii of the
    layers after it summed (``m[L] = 0``, the logits); the last hidden layer's
    at least ``fr`` (a ``pafunet`` model's feature taps)."""
    n_layers = meta.shape[0]
    marg = np.zeros(n_layers + 1, dtype=np.int64)
    for l in range(n_layers - 2, -2, -1):
        marg[l + 1] = marg[l + 2] + (meta[l + 1, 2] - 1) // 2
        if l == n_layers - 2:
            marg[l + 1] = max(marg[l + 1], fr)
    return marg


@nb.njit(**NJIT_CONTRACT)
def _new_scratch(plan, marg):
    """Buffers for bands of up to ``plan.band`` rows."""
    most = min(plan.band, plan.h)
    wa, wr = plan.w + 2 * plan.pad, plan.w + 2 * plan.big_r
    return Scratch(
        np.empty(plan.cmax * (most + 2 * marg[0]) * wa, dtype=np.float32),
        np.empty(plan.cmax * (most + 2 * marg[0]) * wa, dtype=np.float32),
        np.empty((plan.ci + plan.fc) * (most + 2 * plan.big_r) * wr, dtype=np.float32),
        np.empty(TILE, dtype=np.float32),
    )


@nb.njit(**NJIT_CONTRACT)
def one_band(src, wts, plan, outs, marg, span, scratch, simd):
    """:func:`run_bands` for the band of image rows ``span = (y0, y1)``, in the
    given scratch memory; the first ``plan.stages`` stages only; the 16-lane
    kernels ``simd`` (:data:`_simd.SIMD_ON` or ``SIMD_OFF``)."""
    y0, y1 = span
    h, w, pad, cmax, big_r = plan.h, plan.w, plan.pad, plan.cmax, plan.big_r
    n_layers = wts.meta.shape[0]
    rows = y1 - y0 + 2 * marg[0]
    wa, wr = w + 2 * pad, w + 2 * big_r
    cur = Band(scratch.a[: cmax * rows * wa].reshape((cmax, rows, wa)), y0 - marg[0])
    spare = scratch.b[: cmax * rows * wa].reshape((cmax, rows, wa))
    fill_band(src, plan, wts, cur, rows, pad, True)
    if plan.stages < 2:
        return
    for l in range(n_layers - 1):
        m = marg[l + 1]
        dst = Band(spare, y0 - m)
        _conv_layer(cur, dst, wts, l, (max(0, y0 - m), min(h, y1 + m)), plan, scratch.acc, simd)
        _reflect_pads(dst, wts.meta[l, 0], y1 - y0 + 2 * m, plan)
        spare = cur.buf
        cur = dst
    if plan.stages < 3:
        return
    _choose_rows(cur, wts, n_layers - 1, span, plan, outs, scratch.acc, simd)
    if plan.stages < 4:
        return
    nr = y1 - y0 + 2 * big_r
    cr = plan.ci + plan.fc
    raw = Band(scratch.raw[: cr * nr * wr].reshape((cr, nr, wr)), y0 - big_r)
    fill_band(src, plan, wts, raw, nr, big_r, False)
    if plan.fc:
        _copy_features(cur, raw, span, plan)
    if plan.stages < 5:
        return
    _apply_rows(raw, wts, span, plan, outs, simd)


@nb.njit(**NJIT_CONTRACT)
def _run_chunk(src, wts, plan, outs, bands, simd):
    """Bands ``bands = (first, end)`` one after the other, in scratch memory
    allocated once (per-band arrays of a few MB would be mapped afresh, and
    page-faulted, band after band by glibc)."""
    marg = row_margins(wts.meta, plan.fr)
    scratch = _new_scratch(plan, marg)
    for bi in range(bands[0], bands[1]):
        y0 = bi * plan.band
        one_band(src, wts, plan, outs, marg, (y0, min(plan.h, y0 + plan.band)), scratch, simd)


@nb.njit(inline="always", **NJIT_CONTRACT)
def _chunk_bands(plan, n_chunks, chunk):
    """(first, end) band of chunk ``chunk`` of ``n_chunks`` (consecutive, balanced)."""
    n_bands = (plan.h + plan.band - 1) // plan.band
    return chunk * n_bands // n_chunks, (chunk + 1) * n_bands // n_chunks


@nb.njit(**NJIT_CONTRACT_PARALLEL)
def _run_bands_simd(src, wts, plan, outs, n_chunks):
    for chunk in nb.prange(n_chunks):
        _run_chunk(src, wts, plan, outs, _chunk_bands(plan, n_chunks, chunk), SIMD_ON)


@nb.njit(**NJIT_CONTRACT_PARALLEL)
def _run_bands_portable(src, wts, plan, outs, n_chunks):
    for chunk in nb.prange(n_chunks):
        _run_chunk(src, wts, plan, outs, _chunk_bands(plan, n_chunks, chunk), SIMD_OFF)


_SIMD_RAN: list = []  # set once the IR engine has run in this process


def run_bands(src: Source, wts: Weights, plan: Plan, outs: Outputs, n_chunks: int) -> None:
    """The whole model in bands of ``plan.band`` rows, in parallel: fills
    ``outs`` (see :class:`Outputs`) from ``src`` (:class:`Source`).

    The bands are split into ``n_chunks`` runs of consecutive bands, one per
    thread (:func:`_run_chunk`). ``plan.simd`` picks the 16-lane kernels; each
    choice is a separately compiled engine (see
    :data:`pafu_cli.filters.pafu._simd.SIMD_ON`), compiled on first use.
    """
    n_bands = (plan.h + plan.band - 1) // plan.band
    n_chunks = max(1, min(int(n_chunks), n_bands))
    if not _SIMD_RAN:
        _cache.announce_compilation()
    if not plan.simd:
        _run_bands_portable(src, wts, plan, outs, n_chunks)
        return
    if _SIMD_RAN:
        _run_bands_simd(src, wts, plan, outs, n_chunks)
        return
    try:  # the first run compiles (or loads) the IR engine
        _run_bands_simd(src, wts, plan, outs, n_chunks)
    except Exception as exc:  # the IR does not compile with this Numba/LLVM: the portable engine
        _simd.give_up(exc)
        _run_bands_portable(src, wts, plan._replace(simd=0), outs, n_chunks)
        return
    _SIMD_RAN.append(True)

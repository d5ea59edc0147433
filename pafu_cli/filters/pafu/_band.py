"""Banded, planar Numba engine: the whole model (selector, argmax, kernel apply,
depth-to-space) runs on one band of rows at a time.

Why: the straightforward layer-by-layer engine (:mod:`pafu_cli._kernels`) keeps
every selector activation of the whole image in memory (24 channels x 6 MP x
4 bytes = 576 MB per layer for a 24 MP demosaick) and its per-pixel loops over
a few channels vectorise poorly. Here every band is processed by one thread
from start to end in small buffers that stay in cache, and the convolutions
are planar (channel, row, column) so the innermost loop runs over a tile of
columns with all taps of a 3x3 kernel in one pass (SIMD over pixels).

Semantics are those of :mod:`pafu_cli._kernels` (reflection padding at every
layer, first maximum wins, only each kernel's own support visited); only the
order of floating-point additions differs, so outputs agree to rounding and
selections agree except for logits tied within rounding (measured in
``tests/test_band.py``). Each band writes only its own output rows, so results
are the same bits for any thread count.

Layer weights travel as one flat float32 array plus a metadata table
(``meta[l] = (c_out, c_in, k, weight offset, bias offset)``) so that models of
any depth use the same compiled function.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from pafu_cli.filters.pafu._kernels import _reflect, _top2_weight
from pafu_cli.filters.pafu._simd import (
    CONV_OUT,
    LANES,
    conv1_4x16,
    conv1_argmax_16,
    conv1_top2_16,
    conv3_4x16,
    dot4x16,
)

_NJIT = dict(nogil=True, cache=True, fastmath={"contract"})


_NJIT_PARALLEL = dict(_NJIT, parallel=True)


TILE = 256  # columns per inner-loop tile: a row of accumulators stays in L1


@nb.njit(**_NJIT)
def _fill_input(x, v0, nrows, pad, mean, scale, normalise, buf):
    """``buf[c, i, pad + j] = x[reflect(v0 + i), reflect(j), c]`` for j in [-pad, W + pad),
    normalised ``(x - mean) * scale`` if ``normalise``."""
    h, w, ci = x.shape
    for i in range(nrows):
        yy = _reflect(v0 + i, h)
        for j in range(-pad, w + pad):
            xs = _reflect(j, w)
            for c in range(ci):
                v = x[yy, xs, c]
                if normalise:
                    v = (v - mean[c]) * scale[c]
                buf[c, i, pad + j] = v


@nb.njit(**_NJIT)
def _fill_bayer(cfa, top, left, hq, wq, v0, nrows, pad, mean, scale, normalise, buf):
    """As :func:`_fill_input` for the packed RGGB quads of a mosaic, without
    materialising them: quad (i, j) channel (R, G1, G2, B) is sample
    ``(2i + dy, 2j + dx)`` of the mosaic reflect-padded by ``(top, left)``, in a
    packed image of ``hq x wq`` quads (see :func:`pafu_cli.bayer.to_packed_rggb`)."""
    h, w = cfa.shape
    for i in range(nrows):
        qi = _reflect(v0 + i, hq)
        for ch in range(4):
            yy = _reflect(2 * qi + ch // 2 - top, h)
            for j in range(-pad, wq + pad):
                qj = _reflect(j, wq)
                v = cfa[yy, _reflect(2 * qj + ch % 2 - left, w)]
                if normalise:
                    v = (v - mean[ch]) * scale[ch]
                buf[ch, i, pad + j] = v


@nb.njit(**_NJIT)
def _reflect_pads(buf, co, v0, nrows, h, w, pad):
    """Fill rows outside the image and the column pads by reflection of the
    computed (in-image) part of ``buf``, whose row 0 is image row ``v0``."""
    for i in range(nrows):
        v = v0 + i
        if v < 0 or v >= h:
            src = _reflect(v, h) - v0
            for c in range(co):
                for j in range(w):
                    buf[c, i, pad + j] = buf[c, src, pad + j]
    for c in range(co):
        for i in range(nrows):
            for q in range(1, pad + 1):
                buf[c, i, pad - q] = buf[c, i, pad + _reflect(-q, w)]
                buf[c, i, pad + w - 1 + q] = buf[c, i, pad + _reflect(w - 1 + q, w)]


@nb.njit(**_NJIT)
def _conv_tile(src, row0, pad, wf, woff, ci, k, o, j0, tj, acc):
    """``acc[:tj] += sum_{c,dy,dx} w[o, c, dy, dx] * src[c, row0 + dy, pad - r + j0 + j + dx]``."""
    r = (k - 1) // 2
    base = pad - r + j0
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


@nb.njit(**_NJIT)
def _output_tile(src, row0, pad, wf, bf, meta, layer, o, j0, tj, acc):
    """``acc[:tj]`` = output channel ``o`` of selector layer ``layer`` (bias plus
    convolution, no activation) for one column tile of one row."""
    ci, k, woff, boff = meta[layer, 1], meta[layer, 2], meta[layer, 3], meta[layer, 4]
    bias = bf[boff + o]
    for j in range(tj):
        acc[j] = bias
    _conv_tile(src, row0, pad, wf, woff, ci, k, o, j0, tj, acc)


@nb.njit(inline="always", **_NJIT)
def _simd_tile(src, row0, pad, wf, bf, meta, layer, o0, j0, tj, relu, dst, d_base, d_ostride):
    """Outputs ``o0 .. o0 + 3`` of selector layer ``layer`` (bias plus convolution,
    ReLU if ``relu``) for one column tile of one row, 16 pixels per call of the
    explicit-SIMD kernels; output o, column j goes to ``dst[d_base + o d_ostride + j]``.
    Needs ``tj >= 16`` (the last vector overlaps the previous one) and k in (1, 3).
    Beyond the layer's last channel, the last channel is computed again."""
    co, ci, k, woff, boff = meta[layer, 0], meta[layer, 1], meta[layer, 2], meta[layer, 3], meta[layer, 4]
    r = (k - 1) // 2
    srcf = src.ravel()
    c_stride = src.shape[1] * src.shape[2]
    r_stride = src.shape[2]
    oa, ob, oc, od = o0, min(o0 + 1, co - 1), min(o0 + 2, co - 1), min(o0 + 3, co - 1)
    kk = ci * k * k
    ws = (woff + oa * kk, woff + ob * kk, woff + oc * kk, woff + od * kk)
    bs = (boff + oa, boff + ob, boff + oc, boff + od)
    for j in range(0, tj, LANES):
        jj = min(j, tj - LANES)
        s_base = row0 * r_stride + pad - r + j0 + jj
        ds = (
            d_base + oa * d_ostride + jj,
            d_base + ob * d_ostride + jj,
            d_base + oc * d_ostride + jj,
            d_base + od * d_ostride + jj,
        )
        if k == 3:
            conv3_4x16(srcf, s_base, c_stride, r_stride, ci, wf, ws, bf, bs, relu, dst, ds)
        else:
            conv1_4x16(srcf, s_base, c_stride, r_stride, ci, wf, ws, bf, bs, relu, dst, ds)


@nb.njit(**_NJIT)
def _conv_layer(src, src_v0, dst, dst_v0, v_lo, v_hi, w, pad, wf, bf, meta, layer, acc):
    """One hidden selector layer with ReLU for image rows [v_lo, v_hi) into ``dst``."""
    co, k = meta[layer, 0], meta[layer, 2]
    r = (k - 1) // 2
    simd = (k == 1 or k == 3) and w >= LANES
    dstf = dst.ravel()
    d_ostride = dst.shape[1] * dst.shape[2]
    for v in range(v_lo, v_hi):
        row0 = v - r - src_v0
        drow = v - dst_v0
        for j0 in range(0, w, TILE):
            tj = min(TILE, w - j0)
            if simd and tj >= LANES:
                for o0 in range(0, co, CONV_OUT):
                    _simd_tile(
                        src,
                        row0,
                        pad,
                        wf,
                        bf,
                        meta,
                        layer,
                        o0,
                        j0,
                        tj,
                        True,
                        dstf,
                        drow * dst.shape[2] + pad + j0,
                        d_ostride,
                    )
                continue
            for o in range(co):
                _output_tile(src, row0, pad, wf, bf, meta, layer, o, j0, tj, acc)
                d = dst[o, drow]
                for j in range(tj):
                    a = acc[j]
                    d[pad + j0 + j] = a if a > 0 else 0.0


@nb.njit(**_NJIT)
def _argmax_layer(src, src_v0, y0, y1, w, pad, wf, bf, meta, layer, acc, best, mix, idx, idx2, wt):
    """Last selector layer fused with the per-pixel choice: ``idx`` the argmax
    (first maximum wins); with ``mix`` 2 also ``idx2``, the argmax of the other
    logits, and ``wt``, the softmax weight of ``idx`` among the two."""
    co, ci, k, woff, boff = meta[layer, 0], meta[layer, 1], meta[layer, 2], meta[layer, 3], meta[layer, 4]
    r = (k - 1) // 2
    simd = (k == 1 or k == 3) and w >= LANES
    logits = np.empty(co * TILE, dtype=np.float32)
    second = np.empty(TILE, dtype=np.float32)
    srcf = src.ravel()
    idxf, idx2f, wtf = idx.ravel(), idx2.ravel(), wt.ravel()
    c_stride = src.shape[1] * src.shape[2]
    for v in range(y0, y1):
        row0 = v - r - src_v0
        if k == 1 and w >= LANES:  # logits and choice in registers, 16 pixels at a time
            for j in range(0, w, LANES):
                jj = min(j, w - LANES)
                if mix == 2:
                    conv1_top2_16(
                        srcf,
                        row0 * src.shape[2] + pad + jj,
                        c_stride,
                        ci,
                        wf,
                        woff,
                        co,
                        bf,
                        boff,
                        idxf,
                        idx2f,
                        wtf,
                        v * w + jj,
                    )
                else:
                    conv1_argmax_16(
                        srcf,
                        row0 * src.shape[2] + pad + jj,
                        c_stride,
                        ci,
                        wf,
                        woff,
                        co,
                        bf,
                        boff,
                        idxf,
                        idx2f,
                        wtf,
                        v * w + jj,
                    )
            continue
        for j0 in range(0, w, TILE):
            tj = min(TILE, w - j0)
            if simd and tj >= LANES:
                for o0 in range(0, co, CONV_OUT):
                    _simd_tile(src, row0, pad, wf, bf, meta, layer, o0, j0, tj, False, logits, 0, TILE)
            else:
                for o in range(co):
                    _output_tile(src, row0, pad, wf, bf, meta, layer, o, j0, tj, acc)
                    for j in range(tj):
                        logits[o * TILE + j] = acc[j]
            for j in range(tj):
                best[j] = logits[j]
                second[j] = -np.inf
                idx[v, j0 + j] = 0
            for o in range(1, co):
                lo = logits[o * TILE :]
                for j in range(tj):
                    if lo[j] > best[j]:
                        second[j] = best[j]
                        if mix == 2:
                            idx2[v, j0 + j] = idx[v, j0 + j]
                        best[j] = lo[j]
                        idx[v, j0 + j] = o
                    elif lo[j] > second[j]:
                        second[j] = lo[j]
                        if mix == 2:
                            idx2[v, j0 + j] = o
            if mix == 2:
                for j in range(tj):
                    wt[v, j0 + j] = _top2_weight(best[j], second[j])


@nb.njit(**_NJIT)
def _apply_rows(raw, raw_v0, rpad, y0, y1, w, idx, mix, idx2, wt, bank, table, s, top, left, out):
    """Apply the selected kernel at rows [y0, y1) and write depth-to-space into ``out``.

    ``bank`` (n, T, C_pad): tap t of kernel z (taps in (c, dy, dx) order over
    the K x K support, zero outside the kernel's own support) holds its C
    computed outputs, zero-padded to C_pad (a multiple of 16). ``table[o] =
    (dy, dx, c, src)``: output o of pixel (v, j) goes to ``out[v*s + dy - top,
    j*s + dx - left, c]`` when that lies inside ``out``; it is bank output o if
    ``src < 0``, else a copy of input channel ``src`` at the pixel (a
    passthrough output). With ``mix`` 2 a computed output is ``wt r_idx + (1 -
    wt) r_idx2``, the responses of the pixel's two kernels.

    Per column tile of the band, pixels are ordered by their kernel (a counting
    sort), so four pixels with the same kernel share each 16-output weight load
    (:func:`pafu_cli._simd.dot4x16`) and the kernel's weights stay in L1; the
    results go to a tile buffer in pixel order, then to ``out``. Each response
    is the sequential sum over taps (fused multiply-adds), whatever the thread
    count. With ``mix`` 2 the second kernels are applied in a second pass.
    """
    ci = raw.shape[0]
    k = 2 * rpad + 1
    co = table.shape[0]
    n_comp = 0
    while n_comp < co and table[n_comp, 3] < 0:
        n_comp += 1
    n, t_len, co_pad = bank.shape
    co_used = -(-n_comp // LANES) * LANES
    wf = bank.ravel()
    rawf = raw.ravel()
    s_c = raw.shape[1] * raw.shape[2]
    s_r = raw.shape[2]
    off = np.empty(t_len, dtype=np.int64)  # flat offset of each tap from a pixel's top-left tap
    t = 0
    for c in range(ci):
        for dy in range(k):
            for dx in range(k):
                off[t] = c * s_c + dy * s_r + dx
                t += 1
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
                    qa = (y0 + pa // tj - rpad - raw_v0) * s_r + j0 + pa % tj
                    qb = (y0 + pb // tj - rpad - raw_v0) * s_r + j0 + pb % tj
                    qc = (y0 + pc // tj - rpad - raw_v0) * s_r + j0 + pc % tj
                    qd = (y0 + pd // tj - rpad - raw_v0) * s_r + j0 + pd % tj
                    for o0 in range(0, co_used, LANES):
                        dot4x16(
                            rawf,
                            off,
                            t_len,
                            qa,
                            qb,
                            qc,
                            qd,
                            wf,
                            z * t_len * co_pad + o0,
                            co_pad,
                            res,
                            base + pa * co_pad + o0,
                            base + pb * co_pad + o0,
                            base + pc * co_pad + o0,
                            base + pd * co_pad + o0,
                        )
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
                            out[yy, xx, c] = raw[src, v - raw_v0, rpad + j0 + j]
                        elif mix == 2:
                            a = wt[v, j0 + j]
                            q = (i * tj + j) * co_pad + o
                            out[yy, xx, c] = a * res[q] + (np.float32(1.0) - a) * res[per_pass + q]
                        else:
                            out[yy, xx, c] = res[(i * tj + j) * co_pad + o]


@nb.njit(**_NJIT_PARALLEL)
def run_bands(
    x,
    cfa,
    ctop,
    cleft,
    mean,
    scale,
    wf,
    bf,
    meta,
    bank,
    big_k,
    table,
    s,
    top,
    left,
    band,
    out,
    idx,
    mix,
    idx2,
    wt,
    n_chunks,
):
    """The whole model on ``x`` (H, W, Ci) in bands of ``band`` rows, in parallel.

    With ``cfa`` a 2-D mosaic (and ``x`` of shape (H, W, 0)), the input is
    instead the packed RGGB quads of ``cfa`` reflect-padded by ``(ctop, cleft)``,
    read on the fly (``H x W`` quads, 4 channels).

    Writes the per-pixel kernel index into ``idx`` (H, W) (with ``mix`` 2 also
    the second kernel into ``idx2`` and the first one's weight into ``wt``,
    both (H, W); else they are not touched) and the filtered,
    depth-to-space result (window at offset ``(top, left)`` of the s-times
    larger image) into ``out``. Needs ``H`` and ``W`` larger than the model's
    total margin (callers fall back to :mod:`pafu_cli._kernels` otherwise).
    """
    h, w, ci = x.shape
    bayer = cfa.shape[0] > 0
    if bayer:
        ci = 4
    n_layers = meta.shape[0]
    # s_l: rows (and columns) of layer l's output needed beyond the band.
    marg = np.zeros(n_layers + 1, dtype=np.int64)  # marg[l + 1] for layer l; marg[0] input
    for l in range(n_layers - 2, -2, -1):
        marg[l + 1] = marg[l + 2] + (meta[l + 1, 2] - 1) // 2
    pad = 1
    cmax = ci
    for l in range(n_layers):
        pad = max(pad, (meta[l, 2] - 1) // 2)
        cmax = max(cmax, meta[l, 0])
    big_r = (big_k - 1) // 2
    n_bands = (h + band - 1) // band
    n_chunks = max(1, min(n_chunks, n_bands))
    most = min(band, h)
    wa, wr = w + 2 * pad, w + 2 * big_r
    # One chunk of consecutive bands per thread, with its scratch memory allocated
    # once: per-band arrays of a few MB would be mapped afresh (and page-faulted)
    # band after band by glibc.
    for chunk in nb.prange(n_chunks):
        flat_a = np.empty(cmax * (most + 2 * marg[0]) * wa, dtype=np.float32)
        flat_b = np.empty(cmax * (most + 2 * marg[0]) * wa, dtype=np.float32)
        flat_raw = np.empty(ci * (most + 2 * big_r) * wr, dtype=np.float32)
        acc = np.empty(TILE, dtype=np.float32)
        best = np.empty(TILE, dtype=np.float32)
        for bi in range(chunk * n_bands // n_chunks, (chunk + 1) * n_bands // n_chunks):
            _one_band(
                x,
                cfa,
                ctop,
                cleft,
                mean,
                scale,
                wf,
                bf,
                meta,
                bank,
                table,
                s,
                top,
                left,
                out,
                idx,
                mix,
                idx2,
                wt,
                h,
                w,
                ci,
                bayer,
                n_layers,
                marg,
                pad,
                cmax,
                big_r,
                bi * band,
                min(h, bi * band + band),
                flat_a,
                flat_b,
                flat_raw,
                acc,
                best,
            )


@nb.njit(**_NJIT)
def _one_band(
    x,
    cfa,
    ctop,
    cleft,
    mean,
    scale,
    wf,
    bf,
    meta,
    bank,
    table,
    s,
    top,
    left,
    out,
    idx,
    mix,
    idx2,
    wt,
    h,
    w,
    ci,
    bayer,
    n_layers,
    marg,
    pad,
    cmax,
    big_r,
    y0,
    y1,
    flat_a,
    flat_b,
    flat_raw,
    acc,
    best,
):
    """:func:`run_bands` for the band of rows ``y0 .. y1``, in the given scratch memory."""
    rows = y1 - y0 + 2 * marg[0]
    wa, wr = w + 2 * pad, w + 2 * big_r
    buf_a = flat_a[: cmax * rows * wa].reshape((cmax, rows, wa))
    buf_b = flat_b[: cmax * rows * wa].reshape((cmax, rows, wa))
    if bayer:
        _fill_bayer(cfa, ctop, cleft, h, w, y0 - marg[0], rows, pad, mean, scale, True, buf_a)
    else:
        _fill_input(x, y0 - marg[0], rows, pad, mean, scale, True, buf_a)
    src, dst = buf_a, buf_b
    src_v0 = y0 - marg[0]
    for l in range(n_layers - 1):
        m = marg[l + 1]
        dst_v0 = y0 - m
        _conv_layer(src, src_v0, dst, dst_v0, max(0, y0 - m), min(h, y1 + m), w, pad, wf, bf, meta, l, acc)
        _reflect_pads(dst, meta[l, 0], dst_v0, y1 - y0 + 2 * m, h, w, pad)
        src, dst = dst, src
        src_v0 = dst_v0
    _argmax_layer(src, src_v0, y0, y1, w, pad, wf, bf, meta, n_layers - 1, acc, best, mix, idx, idx2, wt)
    raw = flat_raw[: ci * (y1 - y0 + 2 * big_r) * wr].reshape((ci, y1 - y0 + 2 * big_r, wr))
    if bayer:
        _fill_bayer(cfa, ctop, cleft, h, w, y0 - big_r, y1 - y0 + 2 * big_r, big_r, mean, scale, False, raw)
    else:
        _fill_input(x, y0 - big_r, y1 - y0 + 2 * big_r, big_r, mean, scale, False, raw)
    _apply_rows(raw, y0 - big_r, big_r, y0, y1, w, idx, mix, idx2, wt, bank, table, s, top, left, out)

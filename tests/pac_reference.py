"""The PAC operators as the equations say, one output pixel at a time in float64:
the oracle the Numba kernels of :mod:`pafu_cli.filters.pac` are tested against.
Slow on purpose (plain Python loops); use small images."""

from __future__ import annotations

import numpy as np


def k_value(fi, fj, kernel, asymmetric, alpha, lam):
    diff = np.asarray(fj, np.float64) - np.asarray(fi, np.float64)
    if asymmetric:
        diff = np.maximum(diff, 0.0)
    d2 = float(np.sum(diff * diff))
    if kernel == "gaussian":
        return np.exp(-0.5 * d2)
    if kernel == "inv":
        return alpha + (d2 + 1e-4) ** (0.5 * lam)
    if kernel == "one":
        return 1.0
    raise ValueError(kernel)


def conv2d(
    x,
    f,
    w,
    b=None,
    stride=1,
    padding=None,
    dilation=1,
    groups=1,
    normalize=False,
    mask=None,
    kernel="gaussian",
    asymmetric=False,
    alpha=0.0,
    lam=-1.0,
):
    """y[i, co] = b + sum_{t, ci} K(f[c(i)], f[j]) m[j] w[co, ci, t] x[j, ci] (/ sum K m)."""
    x = np.asarray(x, np.float64)
    f = np.asarray(f, np.float64)
    w = np.asarray(w, np.float64)
    h, wd, cin = x.shape
    cout, cin_g, k, _ = w.shape
    cout_g = cout // groups
    p = dilation * (k - 1) // 2 if padding is None else padding
    ho = (h + 2 * p - dilation * (k - 1) - 1) // stride + 1
    wo = (wd + 2 * p - dilation * (k - 1) - 1) // stride + 1
    m = np.ones((h, wd)) if mask is None else np.asarray(mask, np.float64)
    y = np.zeros((ho, wo, cout))
    ymask = np.zeros((ho, wo))
    c = (k - 1) // 2
    for oy in range(ho):
        for ox in range(wo):
            fi = f[oy * stride - p + c * dilation, ox * stride - p + c * dilation]
            taps = [
                (ty, tx, oy * stride - p + ty * dilation, ox * stride - p + tx * dilation)
                for ty in range(k)
                for tx in range(k)
            ]
            taps = [
                (ty, tx, jy, jx) for ty, tx, jy, jx in taps if 0 <= jy < h and 0 <= jx < wd and m[jy, jx] != 0
            ]
            kv = {t: k_value(fi, f[t[2], t[3]], kernel, asymmetric, alpha, lam) * m[t[2], t[3]] for t in taps}
            if normalize and kernel == "gaussian" and taps and sum(kv.values()) == 0:
                # every weight underflowed: the limit of the normalised weights
                d2 = {t: float(np.sum((f[t[2], t[3]] - fi) ** 2)) for t in taps}
                low = min(d2.values())
                kv = {t: np.exp(-0.5 * (d2[t] - low)) * m[t[2], t[3]] for t in taps}
            norm = sum(kv.values())
            for (ty, tx, jy, jx), kk in kv.items():
                for co in range(cout):
                    grp = co // cout_g
                    for ci in range(cin_g):
                        y[oy, ox, co] += kk * w[co, ci, ty, tx] * x[jy, jx, grp * cin_g + ci]
            if normalize:
                y[oy, ox] = y[oy, ox] / norm if norm > 0 else 0.0
            ymask[oy, ox] = len(taps) > 0
            if b is not None:
                y[oy, ox] += b
    return y, ymask


def conv2d_matrix(f, w, h, wd, **options):
    """The matrix of x -> conv2d(x) - b (columns: unit inputs), for the adjoint test."""
    cin = w.shape[1] * options.get("groups", 1)
    cols = []
    for j in range(h * wd * cin):
        e = np.zeros(h * wd * cin)
        e[j] = 1.0
        cols.append(conv2d(e.reshape(h, wd, cin), f, w, **options)[0].ravel())
    return np.stack(cols, axis=1)


def conv_transpose2d(
    x,
    f,
    g,
    w,
    b=None,
    stride=2,
    padding=0,
    output_padding=0,
    dilation=1,
    groups=1,
    normalize=False,
    mask=None,
    kernel="gaussian",
    asymmetric=False,
    alpha=0.0,
    lam=-1.0,
):
    """y[o, co] = b + sum_{(q, t): s q + d t - p = o} K(f[o], g[q]) m[q] w[ci, co, t] x[q, ci] (/ sum K m)."""
    x = np.asarray(x, np.float64)
    f = np.asarray(f, np.float64)
    g = np.asarray(g, np.float64)
    w = np.asarray(w, np.float64)
    h, wd, cin = x.shape
    _, cout_g, k, _ = w.shape
    cin_g = cin // groups
    cout = cout_g * groups
    ho = (h - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    wo = (wd - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    m = np.ones((h, wd)) if mask is None else np.asarray(mask, np.float64)
    y = np.zeros((ho, wo, cout))
    ymask = np.zeros((ho, wo))
    norm = np.zeros((ho, wo))
    seen = np.zeros((ho, wo), bool)
    for qy in range(h):
        for qx in range(wd):
            if m[qy, qx] == 0:
                continue
            for ty in range(k):
                for tx in range(k):
                    oy, ox = stride * qy + dilation * ty - padding, stride * qx + dilation * tx - padding
                    if not (0 <= oy < ho and 0 <= ox < wo):
                        continue
                    kv = k_value(f[oy, ox], g[qy, qx], kernel, asymmetric, alpha, lam) * m[qy, qx]
                    norm[oy, ox] += kv
                    seen[oy, ox] = True
                    for ci in range(cin):
                        grp = ci // cin_g
                        for co in range(cout_g):
                            y[oy, ox, grp * cout_g + co] += kv * w[ci, co, ty, tx] * x[qy, qx, ci]
    if normalize:
        y = np.where(norm[..., None] > 0, y / np.where(norm > 0, norm, 1)[..., None], 0.0)
    ymask[:] = seen
    if b is not None:
        y = y + b
    return y, ymask

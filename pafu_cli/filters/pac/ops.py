"""The PAC operators on NumPy arrays: pixel-adaptive convolution, its exact adjoint,
the transposed (upsampling) form and PAC pooling.

Arrays are channels-last float32: an input ``x`` (H, W, C) or (H, W), guidance
features ``guide`` (H, W, Cg) or (H, W). Weights follow PyTorch's layouts:
``(Cout, Cin / groups, k, k)`` for :func:`pac_conv2d` and its adjoint,
``(Cin, Cout / groups, k, k)`` for :func:`pac_conv_transpose2d` (as
``torch.nn.functional.conv_transpose2d``), so that weights move between the two
without reshuffling. The kernels are in :mod:`pafu_cli.filters.pac._kernels`.
"""

from __future__ import annotations

import numpy as np

from pafu_cli.filters.pac import _kernels as K

KERNELS = ("gaussian", "inv")


def _int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _hwc(a, name, dtype=np.float32) -> np.ndarray:
    """``a`` as a C-contiguous (H, W, C) array (a 2-D array gets C = 1)."""
    try:
        a = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a numeric array ({e})") from None
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{name}: expected an (H, W) or (H, W, C) array, got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name}: empty array (shape {a.shape})")
    if dtype is not None:
        a = np.ascontiguousarray(a, dtype=dtype)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: contains NaN or infinite values (give holes as a mask)")
    return a


def _spec(kernel, asymmetric, inv_alpha, inv_lambda, normalize, masked):
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    kind = K.GAUSSIAN if kernel == "gaussian" else K.INV
    return K.KernelSpec(kind, bool(asymmetric), float(inv_alpha), float(inv_lambda), bool(normalize), masked)


def _mask(mask, shape, name="mask"):
    if mask is None:
        return np.ones((1, 1), np.float32), False
    m = np.ascontiguousarray(np.asarray(mask), dtype=np.float32)
    if m.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError(f"{name}: values must be finite and >= 0 (1 valid, 0 missing)")
    return m, True


def _bias(bias, cout):
    if bias is None:
        return np.zeros(cout, np.float32)
    b = np.ascontiguousarray(np.asarray(bias, dtype=np.float32).reshape(-1))
    if b.shape != (cout,):
        raise ValueError(f"bias: expected {cout} values, got shape {np.shape(bias)}")
    return b


def _weight(weight, groups, first, second_g, name="weight"):
    """Check a (A, B, k, k) weight: A == ``first`` and B == ``second_g`` when given."""
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"{name}: expected shape (A, B, k, k), got {w.shape}")
    if first is not None and w.shape[0] != first:
        raise ValueError(f"{name}: its first dimension is {w.shape[0]}, expected {first}")
    if second_g is not None and w.shape[1] != second_g:
        raise ValueError(f"{name}: its second dimension is {w.shape[1]}, expected {second_g}")
    if w.shape[0] % groups:
        raise ValueError(f"{name}: {w.shape[0]} is not divisible by groups={groups}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return w


def _geometry(k, stride, dilation, padding, groups, transposed=False):
    s = _int("stride", stride, 1)
    d = _int("dilation", dilation, 1)
    g = _int("groups", groups, 1)
    if padding is None:
        if transposed:
            span = d * (k - 1) + 1 - s
            if span < 0 or span % 2:
                raise ValueError(
                    f"no pixel-centre padding for kernel {k}, dilation {d}, stride {s}: "
                    "d (k - 1) + 1 - s must be even and >= 0; give padding="
                )
            p = span // 2
        else:
            p = d * (k - 1) // 2
    else:
        p = _int("padding", padding, 0)
    return K.Geometry(k, s, d, p, g)


def _forward_setup(x, guide, weight, groups, stride, padding, dilation, mask, depthwise_channels=None):
    x = _hwc(x, "x")
    f = _hwc(guide, "guide")
    if f.shape[:2] != x.shape[:2]:
        raise ValueError(f"guide: expected {x.shape[:2]} pixels like x, got {f.shape[:2]}")
    cin = x.shape[2]
    if depthwise_channels is None:
        w = _weight(weight, _int("groups", groups, 1), None, cin // groups if cin % groups == 0 else -1)
        k = w.shape[2]
    else:
        w, k = None, weight
    if k % 2 == 0:
        raise ValueError(f"kernel size must be odd (the window needs a centre pixel), got {k}")
    geo = _geometry(k, stride, dilation, padding, groups)
    if geo.padding > geo.dilation * (k - 1) // 2:
        raise ValueError(
            f"padding {geo.padding} exceeds dilation * (k - 1) / 2 = {geo.dilation * (k - 1) // 2}: "
            "some windows would have no centre pixel"
        )
    ho = (x.shape[0] + 2 * geo.padding - geo.dilation * (k - 1) - 1) // geo.stride + 1
    wo = (x.shape[1] + 2 * geo.padding - geo.dilation * (k - 1) - 1) // geo.stride + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"x ({x.shape[0]}x{x.shape[1]}) is smaller than the dilated kernel")
    m, masked = _mask(mask, x.shape[:2])
    if w is None:
        wt = np.zeros((1, 1, 1, 1), np.float32)
    else:
        wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (k, k, Cin/groups, Cout)
    return x, f, wt, m, masked, geo, ho, wo


def pac_conv2d(
    x,
    guide,
    weight,
    bias=None,
    *,
    stride=1,
    padding=None,
    dilation=1,
    groups=1,
    normalize=False,
    mask=None,
    kernel="gaussian",
    asymmetric=False,
    inv_alpha=0.0,
    inv_lambda=-1.0,
):
    """Pixel-adaptive convolution: ``y_i = b + sum_t K(f_i, f_j) W[t] x_j`` with
    ``j = stride i - padding + dilation t`` (a correlation, as ``conv2d``).

    One K per output pixel and tap, shared by all channels; f_i is the guide at
    the window's centre. Taps outside the image contribute nothing. A normalised
    Gaussian window whose weights all underflow (features very far apart) is
    computed relative to its nearest feature, the limit of the normalised weights.

    Parameters
    ----------
    x : array (H, W, Cin) or (H, W)
    guide : array (H, W, Cg) or (H, W)
        Guidance features, used as they are (scale them to set the bandwidth).
    weight : array (Cout, Cin / groups, k, k), k odd
    bias : array (Cout,), optional
    stride, dilation, groups : int
    padding : int, optional
        Zero padding, at most ``dilation * (k - 1) // 2`` (the default, "same").
    normalize : bool
        Divide by ``sum_j K m_j`` over the window (taps outside the image and
        missing samples do not count).
    mask : array (H, W), optional
        Validity (or confidence) of each input pixel, >= 0: missing samples
        (0) are ignored; with a mask the output mask is returned too.
    kernel : {"gaussian", "inv"}
        ``exp(-|f_i - f_j|^2 / 2)``, or ``inv_alpha + (|f_i - f_j|^2 + 1e-4)^(inv_lambda / 2)``.
    asymmetric : bool
        Use ``max(f_j - f_i, 0)`` per feature channel.

    Returns
    -------
    y : float32 (Ho, Wo, Cout), with Ho = (H + 2 p - d (k - 1) - 1) // s + 1;
    and ``out_mask`` float32 (Ho, Wo) (1 where the window held a valid sample,
    whatever K) when ``mask`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(5, dtype=np.float32).reshape(1, 5)
    >>> guide = np.array([[0, 0, 0, 9, 9]], np.float32)   # an edge between x=2 and x=3
    >>> w = np.ones((1, 1, 3, 3), np.float32)
    >>> pac_conv2d(x, guide, w, normalize=True)[0, :, 0].round(3).tolist()
    [0.5, 1.0, 1.5, 3.5, 3.5]
    """
    x, f, wt, m, masked, geo, ho, wo = _forward_setup(
        x, guide, weight, groups, stride, padding, dilation, mask
    )
    cout = wt.shape[3]
    spec = _spec(kernel, asymmetric, inv_alpha, inv_lambda, normalize, masked)
    y = np.empty((ho, wo, cout), np.float32)
    ymask = np.empty((ho, wo) if masked else (1, 1), np.float32)
    K.forward(K.Conv(x, f, m, wt, _bias(bias, cout), 0), geo, spec, y, ymask)
    return (y, ymask) if masked else y


def pac_pool2d(
    x,
    guide,
    kernel_size,
    *,
    stride=1,
    padding=None,
    dilation=1,
    normalize=False,
    mask=None,
    kernel="gaussian",
    asymmetric=False,
    inv_alpha=0.0,
    inv_lambda=-1.0,
):
    """PAC pooling, ``y_i = sum_j K(f_i, f_j) x_j`` per channel (no weight):
    :func:`pac_conv2d` with W = 1 for every channel on its own. With
    ``normalize`` it is an edge-aware average (a joint bilateral filter when the
    features hold colour and position). Same options and returns as
    :func:`pac_conv2d`."""
    k = _int("kernel_size", kernel_size, 1)
    x, f, wt, m, masked, geo, ho, wo = _forward_setup(
        x, guide, k, 1, stride, padding, dilation, mask, depthwise_channels=True
    )
    c = x.shape[2]
    spec = _spec(kernel, asymmetric, inv_alpha, inv_lambda, normalize, masked)
    y = np.empty((ho, wo, c), np.float32)
    ymask = np.empty((ho, wo) if masked else (1, 1), np.float32)
    K.forward(K.Conv(x, f, m, wt, np.zeros(c, np.float32), 1), geo, spec, y, ymask)
    return (y, ymask) if masked else y


def pac_conv2d_adjoint(
    y,
    guide,
    weight,
    *,
    stride=1,
    padding=None,
    dilation=1,
    groups=1,
    normalize=False,
    mask=None,
    kernel="gaussian",
    asymmetric=False,
    inv_alpha=0.0,
    inv_lambda=-1.0,
):
    """The exact adjoint of :func:`pac_conv2d` (of its linear part: no bias) for the
    same guide, weight, mask and options: ``<pac_conv2d(x), y> = <x, adjoint(y)>``
    for every x and y. The input size is the guide's.

    Parameters
    ----------
    y : array (Ho, Wo, Cout) or (Ho, Wo), the size :func:`pac_conv2d` gives.
    guide, weight, options : as for :func:`pac_conv2d`.

    Returns
    -------
    float32 (H, W, Cin)

    Unlike the transposed operator of the reference code (which evaluates K on
    another grid and ignores the normalisation), this is the transpose of the
    very matrix :func:`pac_conv2d` applies, the form an optimiser or a
    gradient needs.
    """
    f = _hwc(guide, "guide")
    w = _weight(weight, _int("groups", groups, 1), None, None)
    cin = w.shape[1] * groups
    dummy = np.zeros(f.shape[:2] + (cin,), np.float32)
    _, f, wt, m, masked, geo, ho, wo = _forward_setup(dummy, f, w, groups, stride, padding, dilation, mask)
    g = _hwc(y, "y")
    cout = wt.shape[3]
    if g.shape != (ho, wo, cout):
        raise ValueError(f"y: expected shape {(ho, wo, cout)} (the output of pac_conv2d), got {g.shape}")
    spec = _spec(kernel, asymmetric, inv_alpha, inv_lambda, normalize, masked)
    conv = K.Conv(dummy, f, m, wt, np.zeros(cout, np.float32), 0)
    if normalize:
        norms, shifts = K.window_norms(conv, geo, spec, ho, wo)
    else:
        norms, shifts = np.ones((1, 1)), np.zeros((ho, wo))
    xt = np.empty(f.shape[:2] + (cin,), np.float32)
    K.adjoint(conv, geo, spec, g, norms, shifts, xt)
    return xt


def transposed_taps(n_in: int, n_out: int, k: int, stride: int, dilation: int, padding: int):
    """The phase tables of a transposed convolution along one axis: for each
    output o, the pairs (q, t) with ``stride q + dilation t - padding = o``.
    Returns (r, t, n): int64 arrays (n_out, max taps), (n_out, max taps), (n_out,)."""
    o = np.arange(n_out)[:, None]
    t = np.arange(k)[None, :]
    num = o + padding - t * dilation
    q = num // stride
    ok = (num % stride == 0) & (q >= 0) & (q < n_in)
    n, (r, tt) = compact_taps(ok, q, t)
    return r.astype(np.int64), tt.astype(np.int64), n


def compact_taps(keep, *arrays):
    """Tap tables from candidate taps: per row, the entries of each array (broadcast
    to ``keep``'s shape (rows, candidates)) where ``keep`` is True, moved to the
    front in their order, the rest set to 0. Returns (count per row int64, the
    compacted arrays, C-contiguous, at least one column)."""
    n = keep.sum(axis=1)
    cols = max(1, int(n.max()))
    order = np.argsort(~keep, axis=1, kind="stable")[:, :cols]
    unused = np.arange(cols)[None, :] >= n[:, None]
    out = []
    for a in arrays:
        c = np.take_along_axis(np.broadcast_to(a, keep.shape), order, axis=1).copy()
        c[unused] = 0
        out.append(np.ascontiguousarray(c))
    return n.astype(np.int64), out


def block_mean(guide: np.ndarray, n_rows: int, n_cols: int, stride: int, offset: int) -> np.ndarray:
    """Mean of ``guide`` (H, W, C) over the stride x stride block of each of
    n_rows x n_cols samples, the block of sample q starting at ``stride q +
    offset`` (clipped to the image): the features of a low-resolution sample."""
    h, w = guide.shape[:2]

    def bounds(n, size):
        start = np.clip(np.arange(n) * stride + offset, 0, size)
        stop = np.clip(np.arange(n) * stride + offset + stride, 0, size)
        return start, stop

    rs, re_ = bounds(n_rows, h)
    cs, ce = bounds(n_cols, w)
    integral = np.zeros((h + 1, w + 1, guide.shape[2]), np.float64)
    integral[1:, 1:] = guide.astype(np.float64).cumsum(0).cumsum(1)
    total = integral[re_][:, ce] - integral[rs][:, ce] - integral[re_][:, cs] + integral[rs][:, cs]
    count = np.maximum((re_ - rs)[:, None] * (ce - cs)[None, :], 1)[:, :, None]
    return (total / count).astype(np.float32)


def pac_conv_transpose2d(
    x,
    guide,
    weight,
    bias=None,
    *,
    stride,
    padding=None,
    output_padding=0,
    dilation=1,
    groups=1,
    normalize=False,
    mask=None,
    kernel="gaussian",
    asymmetric=False,
    inv_alpha=0.0,
    inv_lambda=-1.0,
    sample_guide=None,
):
    """Transposed PAC (upsampling): ``y_o = b + sum K(f_o, g_q) W[t] x_q`` over the
    pairs (q, t) with ``stride q + dilation t - padding = o``, K evaluated with
    the guide at the output resolution.

    With K = 1 this is exactly ``torch.nn.functional.conv_transpose2d(x, weight,
    stride=stride, padding=padding, output_padding=output_padding,
    dilation=dilation, groups=groups)`` (same weight layout, no kernel flip).
    The default padding ``(dilation (k - 1) + 1 - stride) / 2`` aligns pixel
    centres: low-res sample q sits at output coordinate ``stride q + (stride - 1) / 2``
    and the output is ``stride`` times the input's size.

    Parameters
    ----------
    x : array (h, w, Cin) or (h, w)
    guide : array (H, W, Cg) or (H, W)
        Features at the output resolution, H = (h - 1) s - 2 p + d (k - 1) + output_padding + 1.
    weight : array (Cin, Cout / groups, k, k)
    sample_guide : array (h, w, Cg), optional
        The features of the low-res samples; default: the mean of ``guide``
        over each sample's stride x stride footprint (centred on the sample).
    normalize, mask, kernel, asymmetric, inv_alpha, inv_lambda :
        As for :func:`pac_conv2d`; ``mask`` is (h, w).

    Returns
    -------
    y : float32 (H, W, Cout); and ``out_mask`` (H, W) when ``mask`` is given.
    """
    x = _hwc(x, "x")
    f = _hwc(guide, "guide")
    g = _int("groups", groups, 1)
    cin = x.shape[2]
    w = _weight(weight, g, cin, None)
    k = w.shape[2]
    geo = _geometry(k, stride, dilation, padding, g, transposed=True)
    op = _int("output_padding", output_padding, 0)
    if op >= max(geo.stride, geo.dilation):
        raise ValueError(f"output_padding must be smaller than stride or dilation, got {op}")
    s, d, p = geo.stride, geo.dilation, geo.padding
    h, wd = x.shape[:2]
    ho = (h - 1) * s - 2 * p + d * (k - 1) + op + 1
    wo = (wd - 1) * s - 2 * p + d * (k - 1) + op + 1
    if ho < 1 or wo < 1:
        raise ValueError("the padding leaves no output pixel")
    if f.shape[:2] != (ho, wo):
        raise ValueError(f"guide: expected the output size {ho}x{wo} (rows x columns), got {f.shape[:2]}")
    if sample_guide is None:
        gq = block_mean(f, h, wd, s, (d * (k - 1) - 2 * p - s + 1) // 2)
    else:
        gq = _hwc(sample_guide, "sample_guide")
        if gq.shape != (h, wd, f.shape[2]):
            raise ValueError(f"sample_guide: expected shape {(h, wd, f.shape[2])}, got {gq.shape}")
    m, masked = _mask(mask, (h, wd))
    cout = w.shape[1] * g
    wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (k, k, Cin, Cout/groups)
    ry, ty, ny = transposed_taps(h, ho, k, s, d, p)
    rx, tx, nx = transposed_taps(wd, wo, k, s, d, p)
    spec = _spec(kernel, asymmetric, inv_alpha, inv_lambda, normalize, masked)
    tr = K.Transposed(x, m, gq, f, 1.0, wt, _bias(bias, cout), 0)
    y = np.empty((ho, wo, cout), np.float32)
    ymask = np.empty((ho, wo) if masked else (1, 1), np.float32)
    K.transposed(tr, K.Taps(ry, ty, ny, rx, tx, nx), spec, g, y, ymask)
    return (y, ymask) if masked else y

"""The PAC operators in PyTorch, for training: the same equations and conventions as
the NumPy/Numba operators of :mod:`pafu_cli.filters.pac.ops` (see ``docs/pac.md``), on
NCHW tensors, differentiable in the input, the guide features, the weight, the bias
and the mask.

Every operator is a loop over the k x k taps: for each tap, one shifted (strided)
slice of the input and of the features, the kernel K on that slice, and a 1 x 1
convolution accumulated into the output. Nothing of size ``C k^2 H W`` is made (no
unfold); extra memory is a few tensors of the output's size.

Conventions (as in NumPy): taps outside the image contribute nothing and, with
``normalize``, do not count in the normaliser ``sum K m``; ``mask`` (N, 1, H, W)
holds the validity (or a confidence >= 0) of each input pixel, and with a mask the
output mask (1 where the normaliser is > 0) is returned as well. K is
``exp(-|f_i - f_j|^2 / 2)`` ("gaussian") or ``alpha + (|f_i - f_j|^2 + 1e-4)^(lambda / 2)``
("inv"), f_i the feature at the window's centre (the output pixel for the transposed
form); ``asymmetric`` uses ``max(f_j - f_i, 0)`` per feature channel.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

KERNELS = ("gaussian", "inv")


# --------------------------------------------------------------------------- checks


def _int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _nchw(t, name, n=None, size=None, channels=None):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{name}: expected an (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{name}: expected a batch of {n}, got {t.shape[0]}")
    if size is not None and tuple(t.shape[2:]) != tuple(size):
        raise ValueError(f"{name}: expected {size[0]}x{size[1]} pixels, got {t.shape[2]}x{t.shape[3]}")
    if channels is not None and t.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), got {t.shape[1]}")
    return t


def _kernel_name(kernel):
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    return kernel


def _weight(weight, first, groups):
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or weight.shape[2] != weight.shape[3]:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected a (A, B, k, k) tensor, got {shape}")
    if first is not None and weight.shape[0] != first:
        raise ValueError(f"weight: its first dimension is {weight.shape[0]}, expected {first}")
    if weight.shape[0] % groups:
        raise ValueError(f"weight: {weight.shape[0]} is not divisible by groups={groups}")
    return weight


def _bias(bias, cout, like):
    if bias is None:
        return None
    b = bias.to(like.dtype).reshape(-1)
    if b.shape[0] != cout:
        raise ValueError(f"bias: expected {cout} values, got shape {tuple(bias.shape)}")
    return b.view(1, cout, 1, 1)


# --------------------------------------------------------------------------- the kernel K


def pac_kernel(fi, fj, kernel="gaussian", asymmetric=False, inv_alpha=0.0, inv_lambda=-1.0):
    """K(f_i, f_j) for feature tensors (N, Cg, H, W) of the same shape: (N, 1, H, W).

    Parameters
    ----------
    fi, fj : tensors (N, Cg, H, W)
        The features of the window centres (output pixels) and of the taps.
    kernel : {"gaussian", "inv"}
    asymmetric : bool
        Use ``max(f_j - f_i, 0)`` per channel.
    inv_alpha, inv_lambda : float or 0-d tensor
        The "inv" kernel's ``alpha`` and ``lambda`` (tensors may require grad).

    Returns
    -------
    tensor (N, 1, H, W)
    """
    _kernel_name(kernel)
    diff = fj - fi
    if asymmetric:
        diff = diff.clamp(min=0)
    d2 = (diff * diff).sum(dim=1, keepdim=True)
    if kernel == "gaussian":
        return torch.exp(-0.5 * d2)
    return inv_alpha + (d2 + 1e-4) ** (0.5 * inv_lambda)


def _normalise(acc, norm, normalize, masked):
    """Divide by the normaliser where it is > 0 (0 elsewhere, without NaN in the
    gradient); the output mask when ``masked``."""
    positive = norm > 0
    if normalize:
        safe = torch.where(positive, norm, torch.ones_like(norm))
        acc = torch.where(positive, acc / safe, torch.zeros_like(acc))
    return acc, (positive.to(acc.dtype) if masked else None)


def _options(kernel, asymmetric, inv_alpha, inv_lambda):
    return dict(
        kernel=_kernel_name(kernel), asymmetric=bool(asymmetric), inv_alpha=inv_alpha, inv_lambda=inv_lambda
    )


# --------------------------------------------------------------------------- forward PAC


def _mix(wtap, xt):
    """One tap's channel mixing W[t] x: ``wtap`` (G, Cout / G, Cin / G), ``xt`` (N, Cin, a, b)
    -> (N, Cout, a, b). A batched matmul: for small or float64 tensors much faster than
    a 1 x 1 convolution."""
    n, _, a, b = xt.shape
    gr, co, ci = wtap.shape
    return (wtap @ xt.reshape(n, gr, ci, a * b)).reshape(n, gr * co, a, b)


def _run(fn, recompute, *args):
    """``fn(*args)``; with ``recompute`` (and a gradient to compute), through
    :func:`torch.utils.checkpoint.checkpoint`: autograd then keeps only ``fn``'s inputs
    (views of the layer's inputs) and recomputes its intermediates during the backward
    pass, one tap at a time."""
    if recompute and torch.is_grad_enabled():
        return _checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False)
    return fn(*args)


def _forward(x, f, taps, bias, k, geo, normalize, mask, kopts, recompute):
    """The tap loop of :func:`pac_conv2d` and :func:`pac_pool2d`: ``taps`` (k, k, G, Cout / G,
    Cin / G), the weight by tap, or None for W = 1 per channel (pooling)."""
    s, d, p = geo
    n, cin, h, w = x.shape
    f = _nchw(f, "f", n=n, size=(h, w)).to(x.dtype)
    if k % 2 == 0:
        raise ValueError(f"kernel size must be odd (the window needs a centre pixel), got {k}")
    c = (k - 1) // 2
    if p is None:
        p = d * c
    p = _int("padding", p, 0)
    if p > d * c:
        raise ValueError(
            f"padding {p} exceeds dilation * (k - 1) / 2 = {d * c}: some windows would have no centre"
        )
    ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
    wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"x ({h}x{w}) is smaller than the dilated kernel")
    masked = mask is not None
    if masked:
        valid = _nchw(mask, "mask", n=n, size=(h, w), channels=1).to(x.dtype)
    else:
        valid = x.new_ones((1, 1, h, w))
    pad = (p, p, p, p)
    xp, fp, vp = F.pad(x, pad), F.pad(f, pad), F.pad(valid, pad)  # vp: 0 outside the image

    def tap(a, ty, tx):
        return a[:, :, ty * d : ty * d + s * (ho - 1) + 1 : s, tx * d : tx * d + s * (wo - 1) + 1 : s]

    def one_tap(xp, fp, vp, wtap, ty, tx):
        fc = tap(fp, c, c)  # the window's centre, always inside the image
        kv = pac_kernel(fc, tap(fp, ty, tx), **kopts) * tap(vp, ty, tx)
        xt = tap(xp, ty, tx)
        return (xt if wtap is None else _mix(wtap, xt)) * kv, kv

    acc = norm = None
    for ty in range(k):
        for tx in range(k):
            wtap = None if taps is None else taps[ty, tx]
            term, kv = _run(one_tap, recompute, xp, fp, vp, wtap, ty, tx)
            acc = term if acc is None else acc + term
            norm = kv if norm is None else norm + kv
    y, ymask = _normalise(acc, norm, normalize, masked)
    if bias is not None:
        y = y + bias
    return (y, ymask) if masked else y


def pac_conv2d(
    x,
    f,
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
    recompute=True,
):
    """Pixel-adaptive convolution, ``y_i = b + sum_t K(f_c(i), f_j) m_j W[t] x_j`` with
    ``j = s i - p + d t`` and c(i) the window's centre tap (as
    :func:`pafu_cli.pac.pac_conv2d`).

    Parameters
    ----------
    x : tensor (N, Cin, H, W)
    f : tensor (N, Cg, H, W)
        Guidance features, used as they are (scale them to set the bandwidth).
    weight : tensor (Cout, Cin / groups, k, k), k odd
    bias : tensor (Cout,), optional
    stride, dilation, groups : int
    padding : int, optional
        Zero padding, at most ``dilation * (k - 1) // 2`` (the default, "same").
    normalize : bool
        Divide by ``sum_j K m_j`` over the window (taps outside the image and
        missing samples do not count; 0 where that sum is 0).
    mask : tensor (N, 1, H, W), optional
        Validity or confidence (>= 0) of each input pixel.
    kernel, asymmetric, inv_alpha, inv_lambda :
        See :func:`pac_kernel`.
    recompute : bool
        When a gradient is recorded, keep only the inputs and recompute each tap's
        intermediates in the backward pass (:func:`torch.utils.checkpoint.checkpoint`,
        one tap at a time): memory O(inputs + output) instead of k^2 times the
        input and output, for about one more forward pass of time. False: faster,
        for small layers.

    Returns
    -------
    y : tensor (N, Cout, Ho, Wo), Ho = (H + 2 p - d (k - 1) - 1) // s + 1;
    and the output mask (N, 1, Ho, Wo) when ``mask`` is given.
    """
    x = _nchw(x, "x")
    g = _int("groups", groups, 1)
    w = _weight(weight, None, g)
    if x.shape[1] % g or w.shape[1] * g != x.shape[1]:
        raise ValueError(
            f"weight: expected {x.shape[1]} / groups = {x.shape[1] / g:g} input channels, got {w.shape[1]}"
        )
    geo = (_int("stride", stride, 1), _int("dilation", dilation, 1), padding)
    kopts = _options(kernel, asymmetric, inv_alpha, inv_lambda)
    cout, cin_g, k = w.shape[:3]
    taps = w.to(x.dtype).permute(2, 3, 0, 1).reshape(k, k, g, cout // g, cin_g)
    return _forward(x, f, taps, _bias(bias, cout, x), k, geo, normalize, mask, kopts, recompute)


def pac_pool2d(
    x,
    f,
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
    recompute=True,
):
    """PAC pooling, ``y_i = sum_j K(f_c(i), f_j) m_j x_j`` per channel: :func:`pac_conv2d`
    with W = 1 for each channel on its own (as :func:`pafu_cli.pac.pac_pool2d`). Same
    options and returns as :func:`pac_conv2d`."""
    x = _nchw(x, "x")
    k = _int("kernel_size", kernel_size, 1)
    geo = (_int("stride", stride, 1), _int("dilation", dilation, 1), padding)
    kopts = _options(kernel, asymmetric, inv_alpha, inv_lambda)
    return _forward(x, f, None, None, k, geo, normalize, mask, kopts, recompute)


# --------------------------------------------------------------------------- transposed PAC


def transposed_padding(k, stride, dilation=1):
    """The pixel-centre padding ``(d (k - 1) + 1 - s) / 2`` of a transposed PAC: sample q
    at output coordinate ``s q + (s - 1) / 2`` and an output s times the input."""
    span = dilation * (k - 1) + 1 - stride
    if span < 0 or span % 2:
        raise ValueError(
            f"no pixel-centre padding for kernel {k}, dilation {dilation}, stride {stride}: "
            "d (k - 1) + 1 - s must be even and >= 0; give padding="
        )
    return span // 2


def _block_matrix(n, size, stride, offset, like):
    """(n, size): row q averages the pixels [s q + offset, s q + offset + s) of the
    axis, clipped to it (a row of zeros where nothing is left)."""
    start = (torch.arange(n, device=like.device) * stride + offset).clamp(0, size)
    stop = (torch.arange(n, device=like.device) * stride + offset + stride).clamp(0, size)
    r = torch.arange(size, device=like.device)
    inside = (r[None, :] >= start[:, None]) & (r[None, :] < stop[:, None])
    count = (stop - start).clamp(min=1)
    return inside.to(like.dtype) / count[:, None].to(like.dtype)


def block_mean(f, n_rows, n_cols, stride, offset):
    """The mean of ``f`` (N, C, H, W) over the ``stride x stride`` block of each of
    ``n_rows x n_cols`` samples, the block of sample q starting at ``stride q + offset``
    (clipped to the image): :func:`pafu_cli.filters.pac.ops.block_mean` on NCHW
    tensors, differentiable. Returns (N, C, n_rows, n_cols)."""
    ay = _block_matrix(n_rows, f.shape[2], stride, offset, f)
    ax = _block_matrix(n_cols, f.shape[3], stride, offset, f)
    return torch.einsum("qh,nchw,pw->ncqp", ay, f, ax)


def _tap_range(n_in, n_out, s, d, p, t):
    """The samples q = q0 .. q1 - 1 of tap t whose outputs o = s q + d t - p lie in
    [0, n_out), and the first such output."""
    q0 = max(0, -((d * t - p) // s))  # ceil((p - d t) / s)
    q1 = min(n_in, (n_out - 1 + p - d * t) // s + 1)
    return q0, q1, s * q0 + d * t - p


def pac_conv_transpose2d(
    x,
    f,
    weight,
    bias=None,
    *,
    stride=2,
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
    sample_f=None,
    recompute=True,
):
    """Transposed PAC (upsampling), ``y_o = b + sum K(f_o, g_q) m_q W[t]^T x_q`` over the
    pairs (q, t) with ``s q + d t - p = o`` (``conv_transpose2d``'s relation, no kernel
    flip), as :func:`pafu_cli.pac.pac_conv_transpose2d`.

    Parameters
    ----------
    x : tensor (N, Cin, h, w)
    f : tensor (N, Cg, H, W)
        Features at the output resolution, H = (h - 1) s - 2 p + d (k - 1) + output_padding + 1.
    weight : tensor (Cin, Cout / groups, k, k)
    bias : tensor (Cout,), optional
    stride, dilation, groups, output_padding : int
    padding : int, optional
        Default ``(d (k - 1) + 1 - s) / 2`` (:func:`transposed_padding`): pixel centres
        align and the output is s times larger.
    normalize, mask, kernel, asymmetric, inv_alpha, inv_lambda, recompute :
        As for :func:`pac_conv2d`; ``mask`` is (N, 1, h, w).
    sample_f : tensor (N, Cg, h, w), optional
        The features g_q of the low-res samples; default: the mean of ``f`` over
        each sample's ``s x s`` footprint (:func:`block_mean`, offset
        ``(d (k - 1) - 2 p - s + 1) // 2``).

    Returns
    -------
    y : tensor (N, Cout, H, W); and the output mask (N, 1, H, W) when ``mask`` is given.
    """
    x = _nchw(x, "x")
    kopts = _options(kernel, asymmetric, inv_alpha, inv_lambda)
    n, cin, h, w = x.shape
    g = _int("groups", groups, 1)
    wt = _weight(weight, cin, g).to(x.dtype)
    k = wt.shape[2]
    s, d = _int("stride", stride, 1), _int("dilation", dilation, 1)
    p = transposed_padding(k, s, d) if padding is None else _int("padding", padding, 0)
    op = _int("output_padding", output_padding, 0)
    if op >= max(s, d):
        raise ValueError(f"output_padding must be smaller than stride or dilation, got {op}")
    ho = (h - 1) * s - 2 * p + d * (k - 1) + op + 1
    wo = (w - 1) * s - 2 * p + d * (k - 1) + op + 1
    if ho < 1 or wo < 1:
        raise ValueError("the padding leaves no output pixel")
    f = _nchw(f, "f", n=n, size=(ho, wo)).to(x.dtype)
    if sample_f is None:
        gq = block_mean(f, h, w, s, (d * (k - 1) - 2 * p - s + 1) // 2)
    else:
        gq = _nchw(sample_f, "sample_f", n=n, size=(h, w), channels=f.shape[1]).to(x.dtype)
    masked = mask is not None
    valid = _nchw(mask, "mask", n=n, size=(h, w), channels=1).to(x.dtype) if masked else None
    cout = wt.shape[1] * g
    # (k, k, G, Cout / G, Cin / G): W[t]^T per group
    taps = wt.permute(2, 3, 0, 1).reshape(k, k, g, cin // g, cout // g).transpose(3, 4)

    def one_tap(x, f, gq, valid, wtap, oy, ox, qy, qx):
        kv = pac_kernel(f[:, :, oy, ox], gq[:, :, qy, qx], **kopts)
        if valid is not None:
            kv = kv * valid[:, :, qy, qx]
        return _mix(wtap, x[:, :, qy, qx]) * kv, kv

    acc = x.new_zeros((n, cout, ho, wo))
    norm = x.new_zeros((n, 1, ho, wo))
    for ty in range(k):
        qy0, qy1, oy0 = _tap_range(h, ho, s, d, p, ty)
        if qy1 <= qy0:
            continue
        for tx in range(k):
            qx0, qx1, ox0 = _tap_range(w, wo, s, d, p, tx)
            if qx1 <= qx0:
                continue
            oy = slice(oy0, oy0 + s * (qy1 - qy0 - 1) + 1, s)
            ox = slice(ox0, ox0 + s * (qx1 - qx0 - 1) + 1, s)
            qy, qx = slice(qy0, qy1), slice(qx0, qx1)
            term, kv = _run(one_tap, recompute, x, f, gq, valid, taps[ty, tx], oy, ox, qy, qx)
            acc[:, :, oy, ox] += term  # in-place on a slice: autograd records it (CopySlices)
            norm[:, :, oy, ox] += kv
    y, ymask = _normalise(acc, norm, normalize, masked)
    b = _bias(bias, cout, x)
    if b is not None:
        y = y + b
    return (y, ymask) if masked else y


# --------------------------------------------------------------------------- modules


def _reset(weight, bias, fan_in):
    """nn.Conv2d's initialisation: kaiming uniform with a = sqrt(5), bias uniform in
    +-1 / sqrt(fan_in)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)


class _PacBase(nn.Module):
    def _kernel_options(self):
        return dict(
            normalize=self.normalize,
            kernel=self.kernel,
            asymmetric=self.asymmetric,
            inv_alpha=self.inv_alpha,
            inv_lambda=self.inv_lambda,
        )

    def numpy_kwargs(self):
        """Keyword arguments for the NumPy operator of :mod:`pafu_cli.pac` (``weight`` and
        ``bias`` as float32 arrays, and every option), so that a trained layer runs with
        the Numba engine: ``pac.pac_conv2d(x, guide, **layer.numpy_kwargs())``."""
        out = dict(self._geometry(), **self._kernel_options())
        out["inv_alpha"], out["inv_lambda"] = float(self.inv_alpha), float(self.inv_lambda)
        out["weight"] = self.weight.detach().cpu().to(torch.float32).numpy().copy()
        out["bias"] = None if self.bias is None else self.bias.detach().cpu().to(torch.float32).numpy().copy()
        return out

    def extra_repr(self):
        opts = dict(self._geometry(), **self._kernel_options())
        shown = ", ".join(f"{k}={v}" for k, v in opts.items())
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {shown}"


class PacConv2d(_PacBase):
    """A pixel-adaptive convolution layer (:func:`pac_conv2d`) with nn.Conv2d's weight
    layout (Cout, Cin / groups, k, k) and initialisation.

    ``forward(x, f, mask=None)`` returns y, or (y, output mask) when a mask is given.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        *,
        stride=1,
        padding=None,
        dilation=1,
        groups=1,
        bias=True,
        normalize=False,
        kernel="gaussian",
        asymmetric=False,
        inv_alpha=0.0,
        inv_lambda=-1.0,
        recompute=True,
    ):
        super().__init__()
        k = _int("kernel_size", kernel_size, 1)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {k}")
        g = _int("groups", groups, 1)
        if in_channels % g or out_channels % g:
            raise ValueError(f"in_channels and out_channels must be divisible by groups={g}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, g
        self.normalize, self.kernel, self.asymmetric = bool(normalize), _kernel_name(kernel), bool(asymmetric)
        self.inv_alpha, self.inv_lambda, self.recompute = inv_alpha, inv_lambda, bool(recompute)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // g, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        _reset(self.weight, self.bias, self.weight.shape[1] * self.kernel_size**2)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x, f, mask=None):
        return pac_conv2d(
            x,
            f,
            self.weight,
            self.bias,
            mask=mask,
            recompute=self.recompute,
            **self._geometry(),
            **self._kernel_options(),
        )


class PacConvTranspose2d(_PacBase):
    """A transposed pixel-adaptive convolution layer (:func:`pac_conv_transpose2d`) with
    nn.ConvTranspose2d's weight layout (Cin, Cout / groups, k, k) and initialisation.

    ``forward(x, f, mask=None, sample_f=None)`` returns y, or (y, output mask) when a
    mask is given.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        *,
        stride=2,
        padding=None,
        output_padding=0,
        dilation=1,
        groups=1,
        bias=True,
        normalize=False,
        kernel="gaussian",
        asymmetric=False,
        inv_alpha=0.0,
        inv_lambda=-1.0,
        recompute=True,
    ):
        super().__init__()
        k = _int("kernel_size", kernel_size, 1)
        g = _int("groups", groups, 1)
        if in_channels % g or out_channels % g:
            raise ValueError(f"in_channels and out_channels must be divisible by groups={g}")
        if padding is None:
            transposed_padding(k, stride, dilation)  # fail early
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups = dilation, g
        self.normalize, self.kernel, self.asymmetric = bool(normalize), _kernel_name(kernel), bool(asymmetric)
        self.inv_alpha, self.inv_lambda, self.recompute = inv_alpha, inv_lambda, bool(recompute)
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // g, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        # as nn.ConvTranspose2d: fan_in from the weight's second dimension
        _reset(self.weight, self.bias, self.weight.shape[1] * self.kernel_size**2)

    def _geometry(self):
        return dict(
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def forward(self, x, f, mask=None, sample_f=None):
        return pac_conv_transpose2d(
            x,
            f,
            self.weight,
            self.bias,
            mask=mask,
            sample_f=sample_f,
            recompute=self.recompute,
            **self._geometry(),
            **self._kernel_options(),
        )


# --------------------------------------------------------------------------- layouts


def to_nchw(a, dtype=torch.float64):
    """A channels-last NumPy array (H, W, C) or (H, W), or a batch (N, H, W, C), as an
    NCHW tensor ((1, C, H, W) for one image)."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"expected an (H, W), (H, W, C) or (N, H, W, C) array, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(dtype)


def mask_to_nchw(m, dtype=torch.float64):
    """A NumPy mask (H, W) (or (N, H, W)) as an (N, 1, H, W) tensor."""
    m = np.asarray(m)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"expected an (H, W) or (N, H, W) mask, got shape {m.shape}")
    return torch.from_numpy(np.ascontiguousarray(m[:, None])).to(dtype)


def to_hwc(t, index=0):
    """Image ``index`` of an NCHW tensor as a channels-last NumPy array (H, W, C) of
    the tensor's dtype (detached, on the CPU)."""
    return t[index].detach().cpu().permute(1, 2, 0).numpy().copy()

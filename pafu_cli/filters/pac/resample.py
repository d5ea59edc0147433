"""Guided resampling of low-resolution maps: joint bilateral upsampling (JBU) as a
PAC with fixed weights, and the unguided bicubic, bilinear and box resamplers,
for any output size.

All are one kernel (:func:`pafu_cli.filters.pac._kernels.resample`): separable
spatial weights ``a(q - u)`` tabled per output row and column (u: the output
pixel's centre in low-res coordinates, ``(o + 0.5) h / H - 0.5``; pixel centres
align), times, for JBU, the range kernel ``exp(-|g_q - f_o|^2 / 2)`` of the
guide, normalised by the sum of the weights over the samples that exist. For an
integer factor s the tables are the phases of a transposed convolution: outputs
with the same o mod s share their taps, and JBU equals
:func:`~pafu_cli.filters.pac.ops.pac_conv_transpose2d` with W = 1, ``normalize``
and features [colour / sigma_range, position / sigma_spatial] (tested).

When shrinking (an output axis shorter than the input's), the kernel is widened
by the ratio, as Pillow does (antialiasing).
"""

from __future__ import annotations

import numpy as np

from pafu_cli.filters.pac import _kernels as K
from pafu_cli.filters.pac.ops import compact_taps


def _keys(t):
    """Keys' cubic, a = -0.5 (Pillow's and MATLAB's bicubic)."""
    t = np.abs(t)
    return np.where(
        t <= 1, (1.5 * t - 2.5) * t * t + 1, np.where(t < 2, ((-0.5 * t + 2.5) * t - 4) * t + 2, 0.0)
    )


WEIGHTS = {
    # name: (support radius in input samples, weight of the distance)
    "box": (0.5, lambda t: ((t >= -0.5) & (t < 0.5)).astype(np.float64)),
    "bilinear": (1.0, lambda t: np.maximum(0.0, 1.0 - np.abs(t))),
    "bicubic": (2.0, _keys),
}


def axis_taps(n_in: int, n_out: int, weight, radius: float, linear: bool = False):
    """For each output index, the input samples within ``radius`` (widened when
    shrinking) and their weights ``weight(q - u)``; samples outside [0, n_in)
    are left out (the kernel renormalises). Returns (q int64, a float32, n int64).

    ``linear``: balance each output's weights so that their first moment about
    u is zero on the sample lattice (the side of u with the larger moment is
    scaled down; weights stay >= 0). A truncated Gaussian does not have this
    property (at x8 its weighted mean sits up to 0.1 low-res pixel off the output
    pixel, a ramp comes out shifted per phase); balanced, the resampler
    reproduces ramps (slanted surfaces) exactly, as bilinear and bicubic do."""
    ratio = n_in / n_out
    widen = max(1.0, ratio)
    u = (np.arange(n_out) + 0.5) * ratio - 0.5
    reach = radius * widen
    lo = np.ceil(u - reach - 1e-9).astype(np.int64)
    width = int(np.ceil(2 * reach)) + 2
    q = lo[:, None] + np.arange(width)[None, :]
    t = (q - u[:, None]) / widen
    a = weight(t) * (np.abs(t) <= radius + 1e-12)
    if linear:
        # Scale the heavier side's weights down so that the first moment about u is
        # zero: exact linear precision with weights that stay >= 0.
        left = (a * np.maximum(-t, 0)).sum(axis=1, keepdims=True)
        right = (a * np.maximum(t, 0)).sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            shrink_left = np.where(left > right, right / left, 1.0)
            shrink_right = np.where(right > left, left / right, 1.0)
        a = a * np.where(t < 0, shrink_left, np.where(t > 0, shrink_right, 1.0))
    a = np.where((q >= 0) & (q < n_in), a, 0.0)
    n, (qq, aa) = compact_taps(a != 0, q, a)
    return qq.astype(np.int64), aa.astype(np.float32), n


def _taps(shape_in, shape_out, weight, radius, linear=False):
    ry, ay, ny = axis_taps(shape_in[0], shape_out[0], weight, radius, linear)
    rx, ax, nx = axis_taps(shape_in[1], shape_out[1], weight, radius, linear)
    return K.Taps(ry, ay, ny, rx, ax, nx)


def _hwc(a):
    return a[:, :, None] if a.ndim == 2 else a


def _run(x, mask, size, taps, kind, g=None, f=None, fscale=1.0):
    x3 = _hwc(x)
    if x3.dtype != np.float32 and x3.dtype != np.uint8 and x3.dtype != np.uint16:
        x3 = x3.astype(np.float32)
    x3 = np.ascontiguousarray(x3)
    masked = mask is not None
    m = np.ascontiguousarray(mask, np.float32) if masked else np.ones((1, 1), np.float32)
    if g is None:
        g = np.zeros((1, 1, 1), np.float32)
        f = np.zeros((1, 1, 1), np.float32)
    spec = K.KernelSpec(kind, False, 0.0, 0.0, True, masked)
    y = np.empty((size[0], size[1], x3.shape[2]), np.float32)
    ymask = np.empty(size if masked else (1, 1), np.float32)
    none = np.zeros((1, 1, 1), np.float32)
    rs = K.Resample(x3, m, g, f, np.float32(fscale), False, none, none[0], none[0])
    K.resample(rs, taps, spec, y, ymask)
    if x.ndim == 2:
        y = y[:, :, 0]
    return y, (ymask if masked else None)


def resize(x, size, method: str = "bicubic", mask=None):
    """Resize a map (h, w[, C]) to ``size`` = (H, W) with the named weights
    ("bicubic", "bilinear", "box"), pixel centres aligned; the result's values
    stay in the input's units. With ``mask`` (h, w), missing samples are left
    out and renormalised (only positive weights next to a hole) and the
    output mask is returned as well: (y, out_mask)."""
    radius, weight = WEIGHTS[method]
    taps = _taps(x.shape[:2], size, weight, radius)
    y, ym = _run(x, mask, size, taps, K.ONE)
    return (y, ym) if mask is not None else y


def _gauss(sigma, radius):
    """A Gaussian cut to distances strictly under ``radius``."""
    return lambda t: np.exp(-0.5 * (t / sigma) ** 2) * (np.abs(t) < radius - 1e-9)


def range_scale(guide_dtype, sigma_range: float) -> float:
    """The factor that turns guide values into range features: 1 / (full scale x sigma)."""
    dtype = np.dtype(guide_dtype)
    full = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
    return 1.0 / (full * sigma_range)


def jbu(lowres, guide, size=None, *, sigma_spatial=0.5, sigma_range=0.2, radius=2.0, linear=True, mask=None):
    """Joint bilateral upsampling (Kopf et al. 2007) of a low-resolution map by a
    full-resolution guide: each output pixel averages the low-res samples within
    ``radius`` with weights ``exp(-d^2 / 2 sigma_spatial^2) exp(-|g_q - f_o|^2 / 2
    sigma_range^2)``, d the distance in low-res pixels, f_o the guide at the
    output pixel, g_q the guide's mean over sample q's footprint.

    Parameters
    ----------
    lowres : array (h, w) or (h, w, C), float; channels share the weights.
    guide : array (H, W, Cg) or (H, W): uint8, uint16 or float in [0, 1].
        Read as it is (an 8-bit guide is never copied to float).
    size : (H, W), optional
        Output size; default the guide's. When it differs from the guide's, the
        guide is resized to it first (bilinear).
    sigma_spatial : float, in low-resolution pixels.
    sigma_range : float, in guide units of full scale (0.04 = about 10 levels of 255).
    radius : float, in low-resolution pixels.
    linear : bool
        Balance the spatial weights so that ramps (slanted surfaces) come out
        unshifted where the guide is flat (see :func:`axis_taps`); False gives
        the classic JBU, a transposed PAC with features [colour, position].
    mask : array (h, w), optional
        1 valid, 0 missing: holes are filled from valid neighbours only; then
        returns (y, out_mask), out_mask 0 where no valid sample was in reach.

    Returns
    -------
    float32 (H, W) or (H, W, C) [, out_mask]
    """
    g = guide if guide.ndim == 3 else guide[:, :, None]
    if size is None:
        size = g.shape[:2]
    size = (int(size[0]), int(size[1]))
    if g.shape[:2] != size:
        g = resize(g.astype(np.float32) if g.dtype.kind == "f" else g, size, "bilinear")
        g = g if g.ndim == 3 else g[:, :, None]
    g = np.ascontiguousarray(g)
    fscale = range_scale(guide.dtype, sigma_range)
    h, w = lowres.shape[:2]
    # The features of each sample: the guide averaged over its footprint.
    samples = resize(g, (h, w), "box")
    samples = (samples if samples.ndim == 3 else samples[:, :, None]) * np.float32(fscale)
    taps = _taps((h, w), size, _gauss(sigma_spatial, radius), radius, linear)
    y, ym = _run(lowres, mask, size, taps, K.GAUSSIAN, np.ascontiguousarray(samples, np.float32), g, fscale)
    return (y, ym) if mask is not None else y

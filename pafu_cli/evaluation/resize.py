"""MATLAB-compatible bicubic ``imresize`` in NumPy.

The SR protocol (EDSR/BasicSR convention) builds the low-resolution input with
MATLAB's ``imresize(hr, 1/s, 'bicubic')`` on a uint8 image. This module
reproduces it: Keys cubic (a = -0.5), antialiased when shrinking, sample centre
``u = i/scale + 0.5 (1 - 1/scale)``, ``ceil(kernel width) + 2`` taps with
normalised weights, symmetric border mirroring, rows first, and, for uint8 input,
rounding half away from zero after each 1-D pass.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["imresize", "modcrop"]


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _contributions(in_len: int, out_len: int, scale: float):
    """Return (weights, indices), both (out_len, taps), 0-based indices."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    if antialias:
        w = scale * _cubic(dist * scale)
    else:
        w = _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric mirror: MATLAB's aux = [1..N, N..1].
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    ind = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    # Drop all-zero tap columns (MATLAB does the same; it does not change sums).
    keep = np.any(w != 0, axis=0)
    return w[:, keep], ind[:, keep]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    w, ind = _contributions(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img, axis, 0).astype(np.float64)
    gathered = moved[ind]  # (out_len, taps, ...)
    shape = w.shape + (1,) * (gathered.ndim - 2)
    out = np.sum(gathered * w.reshape(shape), axis=1)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize like MATLAB ``imresize(img, scale, 'bicubic')``.

    Parameters
    ----------
    img : ndarray, (H, W) or (H, W, C), uint8 or float
        uint8 input is rounded (half away from zero) and clipped to 0..255 after
        each 1-D pass, as MATLAB does; float input is kept in float64.
    scale : float
        Output size is ``ceil(scale * H) x ceil(scale * W)``.

    Returns
    -------
    ndarray
        Same dtype as the input (float input gives float64).
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects a 2-D or 3-D array, got shape {img.shape}")
    if scale <= 0:
        raise ValueError(f"imresize scale must be positive, got {scale}")
    is_uint8 = img.dtype == np.uint8
    out_h = int(math.ceil(img.shape[0] * scale))
    out_w = int(math.ceil(img.shape[1] * scale))
    x = img
    for axis, out_len in ((0, out_h), (1, out_w)):
        x = _resize_axis(x, axis, out_len, scale)
        if is_uint8:
            x = np.clip(np.floor(x + 0.5), 0, 255)
    return x.astype(np.uint8) if is_uint8 else x


def modcrop(img: np.ndarray, s: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``s``."""
    h, w = img.shape[:2]
    return img[: h - h % s, : w - w % s]

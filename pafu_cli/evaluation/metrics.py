"""Quality metrics with the standard protocols (see README, "Results")."""

from __future__ import annotations

import numpy as np


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], scale by 255 and round (half away from zero for positives)."""
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak * peak / mse))


def cpsnr(out8: np.ndarray, gt8: np.ndarray, border: int = 10) -> float:
    """CPSNR of uint8 RGB images; ``border=10`` is Tanaka's ``imcpsnr``
    (MATLAB ``X(b:end-b, b:end-b)``: 9 px dropped top/left, 10 bottom/right)."""
    if border:
        sl = (slice(border - 1, -border), slice(border - 1, -border))
        out8, gt8 = out8[sl], gt8[sl]
    return psnr(out8, gt8)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in 0..255 from RGB in [0, 1] (not rounded)."""
    rgb = np.asarray(rgb, np.float64)
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def y_psnr(sr: np.ndarray, hr: np.ndarray, shave: int, grey: bool = False) -> float:
    """Y-PSNR (EDSR/BasicSR convention) of float RGB images in [0, 1]; ``sr`` is
    quantised to 8 bits first. ``grey`` scores a one-channel image on its grey
    value (R=G=B) instead of on Y, as published tables do for Set14's bridge."""
    sr8 = to_uint8(sr).astype(np.float64) / 255.0
    hr = np.asarray(hr, np.float64)
    if grey:
        a, b = sr8.mean(axis=2) * 255.0, hr[..., 0] * 255.0
    else:
        a, b = rgb_to_y(sr8), rgb_to_y(hr)
    if shave:
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    return psnr(a, b)

"""Selection maps: the kernel chosen at each pixel as a colour picture."""

from __future__ import annotations

import numpy as np

# Hue step between consecutive kernel indices (the golden ratio's fractional part),
# and the saturation and value of every colour.
_HUE_STEP = 0.6180339887
_SATURATION = 0.75
_VALUE = 0.95


def _hsv_to_rgb(hue: np.ndarray, sat: float, val: float) -> np.ndarray:
    """Standard HSV -> RGB of hues in [0, 1) at one saturation and value: (n, 3) float."""
    sector = np.floor(hue * 6)
    f = hue * 6 - sector
    v = np.full_like(hue, val)
    p = np.full_like(hue, val * (1 - sat))
    q, t = val * (1 - sat * f), val * (1 - sat * (1 - f))
    by_sector = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    i = sector.astype(int) % 6
    return np.stack([np.choose(i, [rgb[c] for rgb in by_sector]) for c in range(3)], axis=1)


def selection_picture(idx: np.ndarray, n_kernels: int) -> np.ndarray:
    """Colour-code kernel indices (any shape (H, W)) as an (H, W, 3) uint8 picture.

    Kernel k gets hue ``k * 0.618...`` (golden-ratio steps), so neighbouring
    indices get clearly different colours; the mapping depends only on k.
    """
    hue = (np.arange(max(n_kernels, 1)) * _HUE_STEP) % 1.0
    lut = np.round(_hsv_to_rgb(hue, _SATURATION, _VALUE) * 255).astype(np.uint8)
    return lut[np.clip(idx, 0, len(lut) - 1)]

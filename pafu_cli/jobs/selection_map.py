"""Selection maps: the kernel chosen at each pixel as a colour picture."""

from __future__ import annotations

import numpy as np


def selection_picture(idx: np.ndarray, n_kernels: int) -> np.ndarray:
    """Colour-code kernel indices (any shape (H, W)) as an (H, W, 3) uint8 picture.

    Kernel k gets hue ``k * 0.618...`` (golden-ratio steps), so neighbouring
    indices get clearly different colours; the mapping depends only on k.
    """
    k = np.arange(max(n_kernels, 1))
    hue = (k * 0.6180339887) % 1.0
    sat, val = 0.75, 0.95
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - sat * f), val * (1 - sat * (1 - f))
    table = np.select(
        [i[:, None] == j for j in range(6)],
        [
            np.stack([val + 0 * f, t, p + 0 * f], 1),
            np.stack([q, val + 0 * f, p + 0 * f], 1),
            np.stack([p + 0 * f, val + 0 * f, t], 1),
            np.stack([p + 0 * f, q, val + 0 * f], 1),
            np.stack([t, p + 0 * f, val + 0 * f], 1),
            np.stack([val + 0 * f, p + 0 * f, q], 1),
        ],
    )
    lut = np.round(table * 255).astype(np.uint8)
    return lut[np.clip(idx, 0, len(lut) - 1)]

"""Array conventions shared by the public API: integer images to float32 in [0, 1]."""

from __future__ import annotations

import numpy as np


def as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    if a.dtype.kind != "f":
        raise TypeError(f"expected a numeric image array, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)

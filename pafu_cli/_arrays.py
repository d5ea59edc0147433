"""Array conventions shared by the public API: integer images to float32 in [0, 1]."""

from __future__ import annotations

import numpy as np


def full_scale(dtype) -> np.float32:
    """The value that stands for white in an image of this dtype: the integer
    maximum (255, 65535, ...), or 1 for float images."""
    dtype = np.dtype(dtype)
    return np.float32(np.iinfo(dtype).max) if dtype.kind in "iu" else np.float32(1)


def as_float(a: np.ndarray) -> np.ndarray:
    """An image as float32 in [0, 1]: integers divided by :func:`full_scale`, floats as they are."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return a.astype(np.float32) / full_scale(a.dtype)
    if a.dtype.kind != "f":
        raise TypeError(f"expected a numeric image array, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)

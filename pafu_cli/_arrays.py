"""Array conventions shared by the public API: integer images to float32 in [0, 1]."""

from __future__ import annotations

import numpy as np

from pafu_cli.errors import ModelError


def full_scale(dtype) -> np.float32:
    """The value that stands for white in an image of this dtype: the integer
    maximum (255, 65535, ...), or 1 for float images."""
    dtype = np.dtype(dtype)
    return np.float32(np.iinfo(dtype).max) if dtype.kind in "iu" else np.float32(1)


def as_float(a, what: str = "image") -> np.ndarray:
    """An image as float32 in [0, 1]: integers divided by :func:`full_scale`, floats
    as they are. Raises ``TypeError`` for what is not a numeric array and
    ``ValueError`` for an empty array or float values that are NaN or infinite
    (they would spread through every filter that reaches them)."""
    try:
        a = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise TypeError(f"expected a numeric {what} array, got {type(a).__name__} ({e})") from None
    if a.dtype.kind in "iu":
        x = a.astype(np.float32) / full_scale(a.dtype)
    elif a.dtype.kind == "f":
        x = a.astype(np.float32, copy=False)
        # One pass without a temporary; the exact test only when the sum is not finite.
        if not np.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all():
            raise ValueError(
                f"the {what} contains NaN or infinite values; replace them first (np.nan_to_num)"
            )
    else:
        raise TypeError(
            f"expected a numeric {what} array (integers, or floats in [0, 1]), got dtype {a.dtype}"
        )
    if x.size == 0:
        raise ValueError(f"the {what} is empty (shape {x.shape})")
    return x


def check_finite(x: np.ndarray, src, model_name: str) -> None:
    """Refuse a result with NaN or Inf values (a model whose weights overflow) before
    it is written: the sum of a band is finite exactly when every value is (for
    the magnitudes of images), and costs no temporary array."""
    if not np.isfinite(np.add.reduce(x, axis=None)):
        raise ModelError(
            f"{src}: model {model_name} produced non-finite values (NaN/Inf); the model file is "
            "damaged or unsuited to this image"
        )

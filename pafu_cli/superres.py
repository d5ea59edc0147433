"""Public super-resolution API: an image array in, an image s times larger out."""

from __future__ import annotations

import numpy as np

from pafu_cli._arrays import as_float
from pafu_cli.models.registry import resolve_model

SCALES = (2, 3, 4)


def upscale(image, scale: int, model=None, return_selection: bool = False, quality: str | None = None):
    """Upscale an image by 2, 3 or 4 with a PAFU model.

    Selection and filtering run on the low-resolution image and produce 3 s^2
    channels, which depth-to-space turns into the s-times larger image.

    Parameters
    ----------
    image : array_like (H, W, 3) or (H, W)
        Float in [0, 1], or integers (divided by the dtype's maximum). A
        one-channel image is processed as grey RGB and returned as (sH, sW).
    scale : {2, 3, 4}
    model : None, str, path or PafuModel
        None picks the shipped default for ``scale`` (or for ``quality``).
    return_selection : bool
        Also return the (H, W) int32 kernel index of every input pixel (the
        argmax kernel; of a model that blends two, the first of the two).
    quality : None, "fast", "standard" or "high"
        With ``model`` None: the shipped model of this quality (``upscale_x2_fast``,
        ``upscale_x2``, ``upscale_x2_high``); None is "standard".

    Returns
    -------
    ndarray (sH, sW, 3) or (sH, sW) float32, not clipped.

    Examples
    --------
    >>> import numpy as np
    >>> from pafu_cli import upscale
    >>> from pafu_cli.filters.pafu.analytic import nearest_upscale_model
    >>> upscale(np.eye(2), 2, model=nearest_upscale_model(2))[0].tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)):
        raise TypeError(f"scale must be the integer 2, 3 or 4, got {scale!r} ({type(scale).__name__})")
    if scale not in SCALES:
        raise ValueError(f"scale {scale} is not supported; expected one of 2, 3, 4")
    if quality is not None:
        if model is not None:
            raise ValueError("give either model or quality, not both")
        from pafu_cli.models.registry import quality_model

        model = quality_model("upscale", scale, quality)
    m = resolve_model(model, "upscale", scale)
    out, idx = upscale_window(image, m)
    return (out, idx) if return_selection else out


def upscale_window(image, model, out_shape=None, offset=(0, 0)):
    """:func:`upscale` with a checked ``model``, computing only the window of
    ``out_shape`` (rows, columns) at ``offset`` (top, left) of the result (default:
    all of it): the same pixels as the whole result's. Returns (out, idx)."""
    x = as_float(image)
    grey = x.ndim == 2
    if grey:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {np.shape(image)}")
    from pafu_cli.filters.pafu import engine

    out, idx = engine.run(model, x, out_shape, offset)
    if grey:
        out = out.mean(axis=2, dtype=np.float32)
    return out, idx

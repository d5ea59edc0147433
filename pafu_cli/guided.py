"""Public guided-upsampling API: a low-resolution map and a full-resolution image in,
the map at the image's resolution out, in the map's own units."""

from __future__ import annotations

import numpy as np

from pafu_cli.filters.pac import resample

METHODS = ("jbu", "bicubic", "bilinear")
# The default: the shipped learned guided upsampler (docs/guided.md says how it was chosen).
DEFAULT_METHOD = "guided_upsample"


def _size(size, guide_shape):
    if size is None:
        return tuple(guide_shape[:2])
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise TypeError(f"size must be (rows, columns), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def guided_upsample(
    lowres, guide, size=None, *, method=DEFAULT_METHOD, mask=None, sigma_spatial=None, sigma_range=None
):
    """Upsample a low-resolution map (depth, disparity, flow, any map) to the
    resolution of ``guide``, following the guide's edges.

    Parameters
    ----------
    lowres : array (h, w) or (h, w, C)
        Any real numbers, kept in their units; NaN marks a hole. Channels
        share the weights (a flow's u and v move together).
    guide : array (H, W, 3) or (H, W)
        uint8, uint16, or float in [0, 1]. Only ``jbu`` reads it, but its
        size is the default output size for every method.
    size : (rows, columns), optional
        Output size (default the guide's; the guide is resized to it when they differ).
    method : a model name, path or PacModel, or {"jbu", "bicubic", "bilinear"}
        A learned guided upsampler (default: the shipped ``guided_upsample``,
        made by ``pafu train --task guided_upsample``; at x4, x8 and x16, other
        sizes from its nearest scale above), joint bilateral upsampling (a PAC
        with fixed weights), or the unguided resamplers (bicubic equals
        Pillow's to float rounding).
    mask : array (h, w), optional
        1 valid, 0 missing (in addition to NaN). Holes are filled from valid
        neighbours only; where none is in reach the output is NaN.
    sigma_spatial, sigma_range : float, optional
        JBU bandwidths (``method="jbu"`` only): low-resolution pixels, and
        guide units of full scale (defaults: those of :func:`pafu_cli.pac.jbu`,
        chosen on synthetic validation data, see docs/guided.md).

    Returns
    -------
    float32 (H, W) or (H, W, C)

    Examples
    --------
    >>> import numpy as np
    >>> from pafu_cli import guided_upsample
    >>> depth = np.array([[1.0, 1.0, np.nan, 5.0]])
    >>> photo = np.zeros((2, 8), np.uint8); photo[:, 5:] = 255
    >>> guided_upsample(depth, photo, method="jbu").round(2)[0].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0]
    """
    model = None
    if method != "jbu" and (sigma_spatial is not None or sigma_range is not None):
        raise ValueError(
            f"sigma_spatial and sigma_range set JBU's bandwidths: give method='jbu', not {method!r}"
        )
    if not isinstance(method, str) or method not in METHODS:
        from pafu_cli.models.registry import resolve_model

        model = resolve_model(method, "guided_upsample")
    x = np.asarray(lowres)
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3) or x.size == 0:
        raise ValueError(
            f"lowres must be a non-empty (h, w) or (h, w, C) array of numbers, got {x.shape} {x.dtype}"
        )
    g = np.asarray(guide)
    if g.dtype.kind not in "uf" or g.ndim not in (2, 3) or g.size == 0:
        raise ValueError(f"guide must be a non-empty (H, W[, C]) image, got {g.shape} {g.dtype}")
    out_size = _size(size, g.shape)
    x = np.asarray(x, np.float32)
    valid = np.isfinite(x) if x.ndim == 2 else np.isfinite(x).all(axis=2)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != x.shape[:2]:
            raise ValueError(f"mask must have the map's shape {x.shape[:2]}, got {m.shape}")
        valid &= m > 0
    holes = not valid.all()
    if holes:
        x = np.where(valid if x.ndim == 2 else valid[..., None], x, 0).astype(np.float32)
    m = valid.astype(np.float32) if holes else None
    if g.dtype.kind == "f":
        g = g.astype(np.float32, copy=False)
    if model is not None:
        from pafu_cli.filters.pac import engine

        return engine.run(model, x, g, out_size, valid=valid)
    if method == "jbu":
        given = (("sigma_spatial", sigma_spatial), ("sigma_range", sigma_range))
        sigmas = {k: float(v) for k, v in given if v is not None}
        y = resample.jbu(x, g, out_size, mask=m, **sigmas)
    else:
        y = resample.resize(x, out_size, method, mask=m)
    if holes:
        y, ym = y
        bad = ym == 0
        if bad.any():
            y[bad] = np.nan
    return y

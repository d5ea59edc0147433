"""Public demosaicking API: a Bayer mosaic array in, an RGB array out."""

from __future__ import annotations

import numpy as np

from pafu_cli._arrays import as_float
from pafu_cli.cfa import check_pattern
from pafu_cli.filters.pafu.model import receptive_margin
from pafu_cli.models.registry import resolve_model


def packing_pad(model) -> int:
    """Mosaic samples reflected around the image (CFA-preserving reflection, see
    :func:`pafu_cli.cfa.to_packed_rggb`) before it is packed into quads: two
    per quad of the model's receptive margin, so that every quad the image's
    outputs depend on holds mosaic samples, and the engine's own (quad-level)
    reflection at every selector layer stays outside their reach. Part of the
    result's definition near the borders: changing it changes outputs there."""
    return 2 * receptive_margin(model)


def demosaick(cfa, pattern: str = "RGGB", model=None, return_selection: bool = False, out=None):
    """Demosaick (and, with a denoising model, denoise) a Bayer mosaic.

    Parameters
    ----------
    cfa : array_like (H, W)
        The mosaic. Float values are expected in [0, 1] (black 0, white 1);
        integer arrays are divided by their dtype's maximum.
    pattern : {"RGGB", "BGGR", "GRBG", "GBRG"}
        Colours of the top-left 2x2 tile, in raster order.
    model : None, str, path or PafuModel
        None picks the shipped default noise-free model; a name picks another
        shipped model (see ``pafu models``).
    return_selection : bool
        Also return the kernel index chosen for every 2x2 quad.
    out : ndarray (H, W, 3) float32, optional
        C-contiguous array to write the result into (and return), e.g. one
        buffer reused for many bands of a large mosaic.

    Returns
    -------
    rgb : ndarray (H, W, 3) float32
        Not clipped. With ``return_selection``, also the int32 kernel index of
        every RGGB-shifted 2x2 quad that covers part of the image (one more row
        or column than ceil(H/2), ceil(W/2) when the shift splits a quad).

    Examples
    --------
    >>> import numpy as np
    >>> from pafu_cli import demosaick
    >>> from pafu_cli.filters.pafu.analytic import bilinear_demosaick_model
    >>> rgb = demosaick(np.full((6, 8), 0.5), "GRBG", model=bilinear_demosaick_model())
    >>> rgb.shape, float(rgb.min()), float(rgb.max())
    ((6, 8, 3), 0.5, 0.5)
    """
    pattern = check_pattern(pattern)
    x = as_float(cfa, "mosaic")
    if x.ndim != 2:
        raise ValueError(f"a Bayer mosaic must be 2-D (H, W), got shape {x.shape}")
    if min(x.shape) < 2:
        raise ValueError(f"a Bayer mosaic needs at least 2x2 samples, got {x.shape}")
    m = resolve_model(model, "demosaick")
    pad = packing_pad(m)
    from pafu_cli.cfa import packed_geometry
    from pafu_cli.filters.pafu import engine

    rgb, idx = engine.run_mosaic(m, x, pattern, pad, out=out)
    h, w = x.shape
    top, left, _, _ = packed_geometry(h, w, pattern, pad)
    if not return_selection:
        return rgb
    # Quads that hold at least one sample of the original image.
    q0, q1 = top // 2, left // 2
    sel = idx[q0 : (top + h - 1) // 2 + 1, q1 : (left + w - 1) // 2 + 1]
    return rgb, np.ascontiguousarray(sel)

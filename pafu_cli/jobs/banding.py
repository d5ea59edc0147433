"""Row bands for the file jobs: a memory budget checked before a file is processed,
and demosaicking or upscaling one band of rows at a time with a margin, so that
each band equals the whole-image result bit for bit."""

from __future__ import annotations

import numpy as np

from pafu_cli.cfa import RED_OFFSET
from pafu_cli.demosaick import demosaick
from pafu_cli.filters.pafu.model import PafuModel, receptive_margin
from pafu_cli.superres import upscale

BAND_PIXELS = 1 << 22


# Bytes per pixel held for a whole image, on top of one band's float32 work
# (the band's input and RGB output; the banded engine's own buffers are a few MB).
RAW_BYTES_PER_PIXEL = 2 + 6 + 6 + 6 + 2


BAND_BYTES_PER_PIXEL = 4 + 12 + 8


UPSCALE_BYTES_PER_OUT_PIXEL = 4 * 3 * 2 + 2 * 4


UPSCALE_BYTES_PER_IN_PIXEL = 4 * (2 + 4)


def band_rows(h: int, w: int) -> int:
    rows = max(16, BAND_PIXELS // max(w, 1))
    return min(h + (h % 2), rows + rows % 2)


def band_margin(model: PafuModel) -> int:
    """Mosaic rows around a band that its result depends on (even)."""
    margin = 2 * receptive_margin(model) + 2
    return margin + margin % 2


def demosaick_bands(get_rows, h: int, w: int, pattern: str, model: PafuModel, want_sel: bool):
    """Yield ``(r0, r1, rgb, sel)`` for row bands of an (h, w) mosaic.

    ``get_rows(a, b)`` returns rows a..b-1 of the model input (float32, [0, 1]);
    ``a`` is always even so the pattern is unchanged. ``rgb`` is a view of one
    buffer reused for every band: use it before asking for the next band. ``sel`` is the (r1-r0, w)
    kernel index of every pixel (or None).
    """
    margin = band_margin(model)
    rows = band_rows(h, w)
    ry, rx = RED_OFFSET[pattern]
    buf = np.empty((min(h, rows + 2 * margin), w, 3), np.float32)  # one result buffer for all bands
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - margin), min(h, r1 + margin)
        x = get_rows(a, b)
        rgb, idx = demosaick(x, pattern, model=model, return_selection=True, out=buf[: b - a])
        sel = None
        if want_sel:
            qy = np.minimum((np.arange(r0 - a, r1 - a) + ry) // 2, idx.shape[0] - 1)
            qx = np.minimum((np.arange(w) + rx) // 2, idx.shape[1] - 1)
            sel = idx[qy[:, None], qx[None, :]]
        yield r0, r1, rgb[r0 - a : r1 - a], sel


def upscale_band_iter(x: np.ndarray, scale: int, model: PafuModel, want_sel: bool):
    """Yield ``(r0, r1, out, sel)``: rows ``r0*s .. r1*s`` of the upscaled (H, W, 3) or
    (H, W) float32 ``x`` and the kernel index of input rows ``r0 .. r1`` (or None).

    Each band is computed with a margin beyond the model's receptive field, so
    the bands are the whole-image result bit for bit.
    """
    h, w = x.shape[:2]
    margin = receptive_margin(model) + 1
    rows = max(8, BAND_PIXELS // (max(w, 1) * scale * scale))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - margin), min(h, r1 + margin)
        y, idx = upscale(np.ascontiguousarray(x[a:b]), scale, model=model, return_selection=True)
        yield r0, r1, y[(r0 - a) * scale : (r1 - a) * scale], (idx[r0 - a : r1 - a] if want_sel else None)


def upscale_bands(x: np.ndarray, scale: int, model: PafuModel, want_sel: bool):
    """Upscale (H, W, 3) or (H, W) float32 in row bands: (out, sel or None)."""
    h, w = x.shape[:2]
    out = np.empty((h * scale, w * scale) + x.shape[2:], np.float32)
    sel = np.empty((h, w), np.int32) if want_sel else None
    for r0, r1, y, idx in upscale_band_iter(x, scale, model, want_sel):
        out[r0 * scale : r1 * scale] = y
        if sel is not None:
            sel[r0:r1] = idx
    return out, sel

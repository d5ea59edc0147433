"""Numba kernels of the RAW rendering steps that touch every output pixel.

Each does what its plain-NumPy counterpart in :mod:`pafu_cli.raw.render` does, bit
for bit (the tests compare them), in one parallel pass instead of several
whole-image NumPy passes: demosaicked floats to LibRaw's 16-bit camera->sRGB
values, the output histogram, and the gamma curve applied while orienting.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# No fastmath: the float32 operations must round exactly as NumPy's (and LibRaw's).
from pafu_cli._numba import NJIT_PARALLEL as _NJIT_PARALLEL


@nb.njit(inline="always")
def _rgb16_pixel(rgb, y, x, matrix, use_matrix, out, q, sixteenth, full):
    for c in range(3):
        v = np.floor(np.float32(rgb[y, x, c] * full) + sixteenth)
        q[c] = min(max(v, np.float32(0)), full)
    for c in range(3):
        if use_matrix:
            v = matrix[c, 0] * q[0]
            v = v + matrix[c, 1] * q[1]
            v = v + matrix[c, 2] * q[2]
            v = np.trunc(v)
        else:
            v = q[c]
        out[y, x, c] = np.uint16(min(max(v, np.float32(0)), full))


@nb.njit(**_NJIT_PARALLEL)
def to_rgb16(rgb, matrix, use_matrix, out):
    """``render.apply_matrix(render.quantise(rgb * 65535), matrix)`` into ``out`` (uint16).

    ``rgb`` (H, W, 3) float32 in [0, 1] units; ``matrix`` (3, 3) float32, used
    when ``use_matrix`` (else the quantised values are only clipped).
    """
    h, w, _ = rgb.shape
    sixteenth = np.float32(1 / 16)
    full = np.float32(65535)
    for y in nb.prange(h):
        q = np.empty(3, dtype=np.float32)
        for x in range(w):
            _rgb16_pixel(rgb, y, x, matrix, use_matrix, out, q, sixteenth, full)


@nb.njit(**_NJIT_PARALLEL)
def to_rgb16_counting(rgb, matrix, use_matrix, out, parts):
    """:func:`to_rgb16`, adding each written value's ``>> 3`` bin to ``parts``
    ((blocks, 3, 8192) int64, summed over blocks = :func:`histogram` of ``out``):
    the histogram of a band while its values are in the cache."""
    h, w, _ = rgb.shape
    sixteenth = np.float32(1 / 16)
    full = np.float32(65535)
    n_blocks = min(h, parts.shape[0])
    for b in nb.prange(n_blocks):
        q = np.empty(3, dtype=np.float32)
        for y in range(b * h // n_blocks, (b + 1) * h // n_blocks):
            for x in range(w):
                _rgb16_pixel(rgb, y, x, matrix, use_matrix, out, q, sixteenth, full)
                for c in range(3):
                    parts[b, c, out[y, x, c] >> 3] += 1


@nb.njit(**_NJIT_PARALLEL)
def histogram(rgb16):
    """(3, 8192) int64 counts of ``value >> 3`` per channel, as :func:`render.histogram`."""
    h, w, _ = rgb16.shape
    n_blocks = min(h, 64)
    parts = np.zeros((n_blocks, 3, 0x2000), dtype=np.int64)
    for b in nb.prange(n_blocks):
        for y in range(b * h // n_blocks, (b + 1) * h // n_blocks):
            for x in range(w):
                for c in range(3):
                    parts[b, c, rgb16[y, x, c] >> 3] += 1
    return parts.sum(axis=0)


@nb.njit(**_NJIT_PARALLEL)
def curve_oriented_rows(rgb16, lut, flip, row0, out):
    """Rows ``row0 .. row0 + len(out)`` of ``render.orient(lut[rgb16], flip)`` into
    ``out`` without the intermediate: the whole image (``row0 = 0``), or strip by
    strip so that it can be written without holding it."""
    h, w, _ = rgb16.shape
    n, ow, _ = out.shape
    for i in nb.prange(n):
        oy = row0 + np.int64(i)
        for ox in range(ow):
            if flip & 4:
                yy, xx = ox, oy
            else:
                yy, xx = oy, ox
            y = h - 1 - yy if flip & 2 else yy
            x = w - 1 - xx if flip & 1 else xx
            for c in range(3):
                out[i, ox, c] = lut[rgb16[y, x, c]]


@nb.njit(**_NJIT_PARALLEL)
def scale_mosaic01(cfa, colours, black, scale, row0, out):
    """``render.scale_mosaic(cfa, ...) * float32(1 / 65535)`` into ``out`` (float32), bit for bit.

    ``colours`` (2, 2): the colour of each CFA position; ``black`` (4,) float32 and
    ``scale`` (4,) float64 per colour; ``row0``: parity of ``cfa``'s first row.
    """
    h, w = cfa.shape
    inv = np.float32(1 / 65535)
    for yi in nb.prange(h):
        y = np.int64(yi)
        for x in range(w):
            c = colours[(y + row0) % 2, x % 2]
            v = np.float32(cfa[y, x]) - black[c]
            if v < 0:
                v = np.float32(0)
            d = np.trunc(np.float64(v) * scale[c])
            d = min(max(d, 0.0), 65535.0)
            out[y, x] = np.float32(d) * inv

"""Recovering the camera matrix LibRaw uses when rawpy exposes none, by letting
LibRaw render a small probe mosaic written into its raw buffer."""

from __future__ import annotations

import numpy as np

from pafu_cli.raw.read import libraw_errors
from pafu_cli.raw.render import colour_index

# The probe: up to this many 2x2 blocks (rows, columns) of distinct camera RGB
# values; values below _PROBE_TOP (16-bit units) so few outputs clip; an
# accepted fit reproduces every unclipped output within _PROBE_TOL of the
# truncation interval.
_PROBE_BLOCKS = (256, 512)


_PROBE_TOP = 30000


_PROBE_TOL = 0.1


_PROBE_MIN_SAMPLES = 500


def probe_libraw_matrix(raw, pattern: str, black, seed: int = 0):
    """Measure the camera -> sRGB matrix LibRaw applies, by rendering a probe mosaic.

    For some cameras LibRaw takes the matrix from its internal tables without
    exposing it (``rgb_xyz_matrix`` and ``color_matrix`` both empty). This
    writes distinct random camera RGB values into 2x2 blocks of the open
    file's ``raw_image`` (in place: it destroys the mosaic, so copy it first),
    renders it half-size, linear, 16-bit, without white balance or brightness
    changes (scale exactly 1), and fits each output row to
    ``out = trunc(m . rgb)`` by least squares over the unclipped outputs.
    Rounded versions of each row (3 to 6 decimals, as LibRaw's tables hold)
    are kept when they reproduce LibRaw's outputs at least as well.

    Parameters
    ----------
    raw : rawpy.RawPy
        An open, unpacked Bayer file, not yet post-processed.
    pattern : str
        Its Bayer pattern at the visible origin.
    black : (4,) array
        Black level per colour (R, G, B, G2).

    Returns
    -------
    ndarray (3, 3) float32, or None
        None when the image is too small or LibRaw's output does not fit a
        3x3 matrix (another step in the way); the caller then uses none.
    """
    import rawpy

    vis = raw.raw_image_visible
    bh, bw = min(vis.shape[0] // 2, _PROBE_BLOCKS[0]), min(vis.shape[1] // 2, _PROBE_BLOCKS[1])
    top = min(_PROBE_TOP, 65535 - int(np.max(black)))
    if bh * bw < 4 * _PROBE_MIN_SAMPLES or top < 1000:
        return None
    rgb = np.random.default_rng(seed).integers(1, top, size=(bh, bw, 3)).astype(np.uint16)
    tile = colour_index(pattern)
    for y in range(2):
        for x in range(2):
            c = int(tile[y, x])
            vis[y : 2 * bh : 2, x : 2 * bw : 2] = rgb[..., (0, 1, 2, 1)[c]] + np.uint16(black[c])
    try:
        out = raw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR,
            half_size=True,
            use_camera_wb=False,
            use_auto_wb=False,
            user_wb=[1.0, 1.0, 1.0, 1.0],
            user_sat=65535,
            adjust_maximum_thr=0.0,
            no_auto_bright=True,
            gamma=(1, 1),
            output_bps=16,
            user_flip=0,
        )
    except libraw_errors():
        return None
    if out.ndim != 3 or out.shape[0] < bh or out.shape[1] < bw or out.shape[2] != 3:
        return None
    out = out[:bh, :bw].reshape(-1, 3).astype(np.float64)
    a = rgb.reshape(-1, 3).astype(np.float64)
    r, g, b = (rgb[..., c].ravel().astype(np.float32) for c in range(3))
    m = np.zeros((3, 3), np.float32)
    for k in range(3):
        o = out[:, k]
        keep = (o > 0) & (o < 65535)
        if keep.sum() < _PROBE_MIN_SAMPLES:
            return None
        row = np.linalg.lstsq(a[keep], o[keep] + 0.5, rcond=None)[0]
        if np.abs(o[keep] + 0.5 - a[keep] @ row).max() > 0.5 + _PROBE_TOL:
            return None
        best = None
        for cand in [np.round(row, d) for d in (3, 4, 5, 6)] + [row]:
            c0, c1, c2 = cand.astype(np.float32)
            # LibRaw's float32 sum, truncated and clipped (as apply_matrix).
            pred = np.clip(np.trunc(c0 * r + c1 * g + c2 * b), 0, 65535)
            miss = np.count_nonzero(pred != o)
            if best is None or miss < best[0]:
                best = (miss, (c0, c1, c2))
        m[k] = best[1]
    return m

"""LibRaw's rendering around the demosaick, restated in NumPy (no file access).

The steps follow ``LibRaw::dcraw_process`` with its default output settings
(see ``shared/raw/SOURCES.md``): black subtraction and the white level
(``adjust_maximum``), white-balance scaling to 16-bit integers
(``scale_colors``, highlight mode "clip"), the 1-pixel border of the ``LINEAR``
demosaick, camera -> sRGB conversion (``convert_to_rgb``), the auto-brightness
histogram, the gamma curve (``gamma_curve``) and the orientation (``flip``).
Intermediate images are integers held in uint16 (as LibRaw holds them) or
float32 in row bands, so a 24 MP image never needs float64 temporaries.
"""

from __future__ import annotations

import numpy as np

# sRGB (D65) -> XYZ, LibRaw's ``xyz_rgb``. LibRaw 0.22 uses these 7-digit
# values, not dcraw's 6-digit ones (0.412453, ...): with those the matrix of
# the Canon D30 differs from the one LibRaw applies (probed) by 4e-5.
XYZ_FROM_SRGB = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)


# name -> (gamma exponent, toe slope), as rawpy's ``gamma=`` tuple.
GAMMAS = {"srgb": (2.4, 12.92), "bt709": (2.222, 4.5), "linear": (1.0, 1.0)}


# LibRaw colour index at the top-left 2x2 tile: 0 R, 1 G (red row), 2 B, 3 G (blue row).
_LIBRAW_INDEX = {"R": 0, "B": 2}


def colour_index(pattern: str) -> np.ndarray:
    """2x2 LibRaw colour indices (0 R, 1 G, 2 B, 3 second green) of a Bayer pattern.

    >>> colour_index("GRBG").tolist()
    [[1, 0], [2, 3]]
    """
    tile = np.empty((2, 2), np.int64)
    for k, ch in enumerate(pattern):
        y, x = divmod(k, 2)
        if ch == "G":
            red_row = "R" in pattern[2 * y : 2 * y + 2]
            tile[y, x] = 1 if red_row else 3
        else:
            tile[y, x] = _LIBRAW_INDEX[ch]
    return tile


def colour_plane(cfa: np.ndarray, tile: np.ndarray, c: int) -> np.ndarray:
    (y,), (x,) = np.nonzero(tile == c)
    return cfa[y::2, x::2]


def white_point(cfa: np.ndarray, pattern: str, black, white: float, thr: float = 0.75) -> float:
    """LibRaw's ``maximum`` after black subtraction and ``adjust_maximum``.

    ``white - min(black)``, lowered to the data maximum (after black
    subtraction) when that lies between ``thr`` and 100% of it.
    """
    tile = colour_index(pattern)
    maximum = float(white) - float(np.min(black))
    data_max = max(float(colour_plane(cfa, tile, c).max()) - float(black[c]) for c in range(4))
    if thr > 0 and 0 < data_max < maximum and data_max > maximum * thr:
        maximum = data_max
    return maximum


def subtract_black(cfa: np.ndarray, tile: np.ndarray, black, row0: int = 0) -> np.ndarray:
    """float32 mosaic minus the per-colour black, clipped at 0 (``row0``: parity of row 0)."""
    out = cfa.astype(np.float32)
    for y in range(2):
        for x in range(2):
            sl = out[(y + row0) % 2 :: 2, x::2]
            np.subtract(sl, np.float32(black[tile[y, x]]), out=sl)
    np.maximum(out, 0, out=out)
    return out


def grey_world(cfa: np.ndarray, pattern: str, black, maximum: float, block: int = 8) -> np.ndarray:
    """LibRaw's automatic white balance: (4,) multipliers count / sum per colour.

    Sums black-subtracted samples over ``block`` x ``block`` blocks, skipping
    every block that holds a sample above ``maximum - 25`` (clipped highlights).
    """
    tile = colour_index(pattern)
    h, w = cfa.shape
    dsum = np.zeros(8)
    band = block * max(1, 4096 // block)
    for r0 in range(0, h, band):
        v = subtract_black(cfa[r0 : r0 + band], tile, black, row0=r0 % 2)
        bh, bw = -(-v.shape[0] // block), -(-w // block)
        pad = np.zeros((bh * block, bw * block), np.float32)
        pad[: v.shape[0], :w] = v
        blocks = pad.reshape(bh, block, bw, block)
        keep = ~np.any(blocks > maximum - 25, axis=(1, 3))
        for y in range(2):
            for x in range(2):
                c = tile[y, x]
                sub = np.zeros_like(pad, dtype=bool)
                sub[y : v.shape[0] : 2, x:w:2] = True
                sub = sub.reshape(bh, block, bw, block)
                vals = np.where(sub, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
                dsum[c] += vals[keep].sum()
                dsum[c + 4] += sub.sum(axis=(1, 3))[keep].sum()
    mul = np.zeros(4)
    nz = dsum[:4] > 0
    mul[nz] = dsum[4:][nz] / dsum[:4][nz]
    return mul.astype(np.float32)


def wb_scale(pre_mul, maximum: float) -> np.ndarray:
    """Per-colour factors (4,) float64 that map black-subtracted raw to 0..65535.

    Multipliers are divided by their minimum (highlights clip, as LibRaw's
    default ``highlight=0``), then scaled by ``65535 / maximum``.
    """
    mul = np.array(pre_mul, np.float64).copy()
    if mul[1] <= 0:
        mul[1] = 1.0
    if mul[3] <= 0:
        mul[3] = mul[1]
    mul = (mul / mul.min()).astype(np.float32)
    # Kept in double: LibRaw's products match double, not float32, arithmetic.
    return mul.astype(np.float64) * 65535.0 / maximum


def scale_mosaic(cfa: np.ndarray, pattern: str, black, scale, row0: int = 0) -> np.ndarray:
    """Black-subtracted, white-balanced mosaic as LibRaw's uint16 values, in float32.

    ``int((raw - black) * scale)`` clipped to 0..65535. ``row0`` is the parity
    of the first row of ``cfa`` in the image. The product is taken in double
    one colour plane at a time (a quarter of the band), as LibRaw's matches it.
    """
    tile = colour_index(pattern)
    v = subtract_black(cfa, tile, black, row0)
    for y in range(2):
        for x in range(2):
            sl = v[(y + row0) % 2 :: 2, x::2]
            sl[...] = np.clip(np.trunc(sl * np.float64(scale[tile[y, x]])), 0, 65535)
    return v


def quantise(rgb: np.ndarray) -> np.ndarray:
    """Demosaicked float values in 16-bit units -> LibRaw's floored integers (float32).

    LibRaw's ``LINEAR`` divides integer sums by 4 or 8 and floors; our engine
    computes the same quotients in float32 with a tiny error, so 1/16 is added
    before flooring to land exact quotients on the right integer.
    """
    out = np.add(rgb, np.float32(1 / 16), dtype=np.float32)
    np.floor(out, out=out)
    np.clip(out, 0, 65535, out=out)
    return out


def libraw_border(cfa: np.ndarray, pattern: str, black, scale):
    """LibRaw ``border_interpolate(1)``: RGB of the image's 1-pixel frame.

    Each missing colour is the floored mean of the same-colour samples in the
    3x3 window (inside the image); the measured colour is kept. Samples are
    scaled exactly as :func:`scale_mosaic` does.

    Parameters
    ----------
    cfa : ndarray (H, W) uint16
        The raw mosaic.
    pattern, black, scale
        As for :func:`scale_mosaic`.

    Returns
    -------
    ys, xs : ndarray (N,) int
        Coordinates of the frame pixels.
    rgb : ndarray (N, 3) float32
        Their values in 16-bit units.
    """
    h, w = cfa.shape
    tile = colour_index(pattern)
    rgb_of = np.array([0, 1, 2, 1])  # the second green is green
    black = np.asarray(black, np.float32)
    scale = np.asarray(scale, np.float64)
    ys = np.concatenate([np.zeros(w, int), np.full(w, h - 1), np.arange(1, h - 1), np.arange(1, h - 1)])
    xs = np.concatenate([np.arange(w), np.arange(w), np.zeros(h - 2, int), np.full(h - 2, w - 1)])
    sums = np.zeros((ys.size, 3))
    counts = np.zeros((ys.size, 3))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = ys + dy, xs + dx
            idx = np.nonzero((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w))[0]
            yy, xx = yy[idx], xx[idx]
            c = tile[yy % 2, xx % 2]
            v = np.maximum(cfa[yy, xx].astype(np.float32) - black[c], np.float32(0))
            v = np.clip(np.trunc(v * scale[c]), 0, 65535)
            np.add.at(sums, (idx, rgb_of[c]), v)
            np.add.at(counts, (idx, rgb_of[c]), 1)
    rgb = np.floor(sums / np.maximum(counts, 1)).astype(np.float32)
    own = rgb_of[tile[ys % 2, xs % 2]]
    c = tile[ys % 2, xs % 2]
    v = np.maximum(cfa[ys, xs].astype(np.float32) - black[c], np.float32(0))
    rgb[np.arange(ys.size), own] = np.clip(np.trunc(v * scale[c]), 0, 65535)
    return ys, xs, rgb


def camera_to_srgb(color_matrix, rgb_xyz_matrix, is_dng: bool, camera_wb_used: bool):
    """The 3x3 camera -> sRGB matrix LibRaw applies (float32), or None for none.

    The file's own matrix (DNG colour data) when present and plausible, else
    the pseudo-inverse of LibRaw's built-in camera matrix with rows normalised
    to 1, else None: no conversion (LibRaw's ``raw_color``), unless LibRaw
    uses a matrix it does not expose (``io.probe_libraw_matrix`` measures it).
    """
    cm = np.asarray(color_matrix, np.float64)
    if (is_dng or camera_wb_used) and cm[0, 0] > 0.125:
        return cm[:, :3].astype(np.float32)
    xyz = np.asarray(rgb_xyz_matrix, np.float64)[:3]
    if not np.any(xyz):
        return None
    cam_rgb = xyz @ XYZ_FROM_SRGB
    cam_rgb /= cam_rgb.sum(axis=1, keepdims=True)
    return np.linalg.pinv(cam_rgb).astype(np.float32)


def apply_matrix(rgb: np.ndarray, matrix) -> np.ndarray:
    """``out[c] = sum_j m[c, j] rgb[j]`` in float32, truncated, clipped to 0..65535 (uint16)."""
    if matrix is None:
        return np.clip(rgb, 0, 65535).astype(np.uint16)
    m = np.asarray(matrix, np.float32)
    out = np.empty(rgb.shape, np.uint16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    for c in range(3):
        # Same order of float32 operations as LibRaw's loop.
        v = m[c, 0] * r
        v += m[c, 1] * g
        v += m[c, 2] * b
        np.trunc(v, out=v)
        np.clip(v, 0, 65535, out=v)
        out[..., c] = v
    return out


def histogram(rgb16: np.ndarray) -> np.ndarray:
    """(3, 8192) counts of ``value >> 3`` per channel (LibRaw's output histogram)."""
    return np.stack([np.bincount((rgb16[..., c] >> 3).ravel(), minlength=0x2000) for c in range(3)])


def auto_white(hist: np.ndarray, n_pixels: int, threshold: float = 0.01) -> int:
    """LibRaw's auto-brightness white level: the value above which ~1% of pixels lie."""
    perc = int(np.float32(n_pixels) * np.float32(threshold))
    t_white = 0
    for c in range(hist.shape[0]):
        tail = np.cumsum(hist[c, 0x1FFF:32:-1])
        over = np.nonzero(tail > perc)[0]
        val = 0x1FFF - int(over[0]) if over.size else 32
        t_white = max(t_white, val)
    return t_white << 3


def gamma_curve(gamma=(2.4, 12.92), white: float = 65536) -> np.ndarray:
    """LibRaw's 65536-entry output curve (uint16) for ``gamma`` = (exponent, toe slope).

    Values at or above ``white`` map to 65535; below, ``V = slope * L`` under
    the toe and ``(1 + a) L^(1/exponent) - a`` above it, times 65536.
    """
    pwr, ts = 1.0 / gamma[0], float(gamma[1])
    g = [pwr, ts, 0.0, 0.0, 0.0]
    bnd = [0.0, 0.0]
    bnd[1 if ts >= 1 else 0] = 1.0
    if ts and (ts - 1) * (pwr - 1) <= 0:
        for _ in range(48):
            g[2] = (bnd[0] + bnd[1]) / 2
            if pwr:
                bnd[1 if ((g[2] / ts) ** -pwr - 1) / pwr - 1 / g[2] > -1 else 0] = g[2]
            else:
                bnd[1 if g[2] / np.exp(1 - 1 / g[2]) < ts else 0] = g[2]
        g[3] = g[2] / ts
        if pwr:
            g[4] = g[2] * (1 / pwr - 1)
    imax = int(white)
    r = np.arange(0x10000, dtype=np.float64) / imax
    with np.errstate(divide="ignore"):
        v = np.where(r < g[3], r * ts, np.power(r, pwr) * (1 + g[4]) - g[4])
    curve = np.where(r < 1, np.trunc(0x10000 * v), 0xFFFF)
    return np.clip(curve, 0, 0xFFFF).astype(np.uint16)


def orient(image: np.ndarray, flip: int) -> np.ndarray:
    """Apply LibRaw's ``flip`` code: bit 2 rows reversed, bit 1 columns, bit 4 transpose."""
    out = image
    if flip & 2:
        out = out[::-1]
    if flip & 1:
        out = out[:, ::-1]
    if flip & 4:
        out = np.swapaxes(out, 0, 1)
    return np.ascontiguousarray(out)

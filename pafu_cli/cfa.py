"""Bayer colour filter arrays: pattern validation, synthetic mosaics, the phase shift
to RGGB and the packing into 2x2 quads that the demosaick models read."""

from __future__ import annotations

import numpy as np

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


_CHANNEL = {"R": 0, "G": 1, "B": 2}


# Offset (row, col) of the red sample inside the 2x2 tile of each pattern.
RED_OFFSET = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}


def check_pattern(pattern: str) -> str:
    """Return the upper-cased pattern or raise ``ValueError`` naming the choices."""
    if not isinstance(pattern, str):
        raise TypeError(
            f"a CFA pattern is a string such as 'RGGB', got {pattern!r} ({type(pattern).__name__})"
        )
    p = pattern.upper()
    if p not in PATTERNS:
        raise ValueError(f"CFA pattern '{pattern}' is not supported; expected one of {', '.join(PATTERNS)}")
    return p


def channel_map(pattern: str, shape) -> np.ndarray:
    """(H, W) int array: colour index (0 R, 1 G, 2 B) of every mosaic sample."""
    p = check_pattern(pattern)
    tile = np.array([[_CHANNEL[p[0]], _CHANNEL[p[1]]], [_CHANNEL[p[2]], _CHANNEL[p[3]]]])
    h, w = shape
    return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def mosaic(rgb: np.ndarray, pattern: str = "RGGB") -> np.ndarray:
    """Sample an (H, W, 3) image with a Bayer CFA: (H, W) mosaic of the same dtype."""
    cm = channel_map(pattern, rgb.shape[:2])
    return np.take_along_axis(rgb, cm[..., None], axis=2)[..., 0]


def packed_geometry(h: int, w: int, pattern: str, margin: int):
    """Padding of an ``h x w`` mosaic for :func:`to_packed_rggb`.

    Returns ``(top, left, hp, wp)``: offsets of the mosaic in the padded one and
    the padded size (both even; the padded origin is red).
    """
    p = check_pattern(pattern)
    ry, rx = RED_OFFSET[p]
    # Top/left pads must be congruent to the red offset mod 2 (an even margin
    # plus the phase shift) so that padded row 0 / column 0 start with red.
    margin += margin % 2
    top, left = margin + ry, margin + rx
    bottom = margin + (-(h + top + margin) % 2)
    right = margin + (-(w + left + margin) % 2)
    return top, left, h + top + bottom, w + left + right


def to_packed_rggb(cfa: np.ndarray, pattern: str, margin: int):
    """Reflect-pad a mosaic so its origin is red, its size even and ``margin`` extra
    samples lie on every side, then pack it into (H', W', 4) quads R, G1, G2, B.

    Reflection keeps the colour of every padded sample consistent with the
    pattern, because mirrored positions have the same parity.

    Returns
    -------
    packed : ndarray (Hp/2, Wp/2, 4) float32
    crop : tuple (top, left)
        Offsets of the original image in the padded full-resolution mosaic.
    """
    h, w = cfa.shape
    top, left, hp, wp = packed_geometry(h, w, pattern, margin)
    bottom, right = hp - h - top, wp - w - left
    padded = np.pad(np.asarray(cfa, np.float32), ((top, bottom), (left, right)), mode="reflect")
    return pack_bayer(padded), (top, left)


def pack_bayer(mosaic: np.ndarray) -> np.ndarray:
    """Pack an RGGB-phased ``(2H, 2W)`` mosaic into ``(H, W, 4)`` float32 quads.

    Channels are the quad positions in raster order: (0,0)=R, (0,1)=G1,
    (1,0)=G2, (1,1)=B.
    """
    m = np.asarray(mosaic, np.float32)
    return np.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]], axis=2)

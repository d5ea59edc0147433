"""A minimal PNG codec for what Pillow cannot do: 16-bit colour and grey+alpha.

Pillow (imageio's PNG backend) reads 16-bit RGB/RGBA PNGs as 8 bits and
cannot write them, so pafu encodes every PNG here (filter type 0, zlib) and
decodes the 16-bit colour ones here. Interlaced 16-bit colour PNGs are refused.
"""

from __future__ import annotations

import struct
import zlib

import numba as nb
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode(image: np.ndarray) -> bytes:
    """PNG bytes of a (H, W) or (H, W, 1..4) uint8/uint16 image (no filtering)."""
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    depth = 16 if image.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(image, dtype=">u2" if depth == 16 else np.uint8)
    rows = rows.reshape(h, -1).view(np.uint8)
    scan = np.zeros((h, rows.shape[1] + 1), np.uint8)
    scan[:, 1:] = rows
    header = struct.pack(">IIBBBBB", w, h, depth, _COLOUR_TYPES[c], 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(scan.tobytes(), 6)) + _chunk(b"IEND", b""))


def write_stream(fh, shape, dtype, blocks, chunk: int = 1 << 20) -> None:
    """Write a PNG of ``shape`` (H, W[, C]) to ``fh`` from blocks of rows, holding
    one block and one compressed chunk at a time (same pixels as :func:`encode`)."""
    h, w = shape[:2]
    c = 1 if len(shape) == 2 else shape[2]
    depth = 16 if np.dtype(dtype) == np.uint16 else 8
    fh.write(SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _COLOUR_TYPES[c], 0, 0, 0)))
    z = zlib.compressobj(6)
    pending = []
    size = 0
    for blk in blocks:
        rows = np.ascontiguousarray(blk, dtype=">u2" if depth == 16 else np.uint8)
        rows = rows.reshape(rows.shape[0], -1).view(np.uint8)
        scan = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint8)  # filter type 0 per row
        scan[:, 1:] = rows
        data = z.compress(scan.tobytes())
        pending.append(data)
        size += len(data)
        if size >= chunk:
            fh.write(_chunk(b"IDAT", b"".join(pending)))
            pending, size = [], 0
    pending.append(z.flush())
    fh.write(_chunk(b"IDAT", b"".join(pending)) + _chunk(b"IEND", b""))


def header(data: bytes):
    """(width, height, bit depth, colour type, interlace) from the IHDR, or None."""
    if len(data) < 33 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


@nb.njit(nogil=True, cache=True)
def _unfilter(buf, h, stride, bpp, out):
    """Undo PNG filters 0-4 of ``buf`` (h * (stride + 1) bytes) into ``out`` (h, stride)."""
    for y in range(h):
        ftype = buf[y * (stride + 1)]
        base = y * (stride + 1) + 1
        for x in range(stride):
            raw = np.int32(buf[base + x])
            a = np.int32(out[y, x - bpp]) if x >= bpp else 0
            b = np.int32(out[y - 1, x]) if y > 0 else 0
            c = np.int32(out[y - 1, x - bpp]) if (x >= bpp and y > 0) else 0
            if ftype == 0:
                v = raw
            elif ftype == 1:
                v = raw + a
            elif ftype == 2:
                v = raw + b
            elif ftype == 3:
                v = raw + (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                if pa <= pb and pa <= pc:
                    v = raw + a
                elif pb <= pc:
                    v = raw + b
                else:
                    v = raw + c
            out[y, x] = v & 0xFF


def decode16(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG to (H, W) or (H, W, C) uint16.

    Raises ``ValueError`` on malformed data.
    """
    w, h, depth, ctype, interlace = header(data)
    if depth != 16 or ctype not in _CHANNELS or interlace:
        raise ValueError("only non-interlaced 16-bit grey/RGB/alpha PNGs are decoded here")
    c = _CHANNELS[ctype]
    pos, idat = 8, []
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        if tag == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + n])
        elif tag == b"IEND":
            break
        pos += 12 + n
    buf = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    stride = w * c * 2
    if buf.size != h * (stride + 1):
        raise ValueError(f"image data holds {buf.size} bytes, expected {h * (stride + 1)}")
    out = np.empty((h, stride), np.uint8)
    _unfilter(buf, h, stride, 2 * c, out)
    img = out.view(">u2").reshape(h, w, c).astype(np.uint16)
    return img[..., 0] if c == 1 else img

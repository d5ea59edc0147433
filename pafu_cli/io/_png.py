"""A minimal PNG codec for what Pillow cannot do: 16-bit colour and grey+alpha.

Pillow (imageio's PNG backend) reads 16-bit RGB/RGBA PNGs as 8 bits and
cannot write them, so pafu encodes every PNG here (filter type 0, zlib) and
decodes the 16-bit colour ones here. Interlaced 16-bit colour PNGs are refused.
"""

from __future__ import annotations

import os
import struct
import zlib

import numba as nb
import numpy as np

from pafu_cli._numba import NJIT

SIGNATURE = b"\x89PNG\r\n\x1a\n"


_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode(image: np.ndarray) -> bytes:
    """PNG bytes of a (H, W) or (H, W, 1..4) uint8/uint16 image (no filtering)."""
    import io

    buf = io.BytesIO()
    write_stream(buf, image.shape, image.dtype, iter([image]))
    return buf.getvalue()


def _encode_serial(image: np.ndarray) -> bytes:
    """:func:`encode` in one zlib call (the reference the tests compare with)."""
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    depth = 16 if image.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(image, dtype=">u2" if depth == 16 else np.uint8)
    rows = rows.reshape(h, -1).view(np.uint8)
    scan = np.zeros((h, rows.shape[1] + 1), np.uint8)
    scan[:, 1:] = rows
    header = struct.pack(">IIBBBBB", w, h, depth, _COLOUR_TYPES[c], 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(scan.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def _deflate_piece(data: bytes) -> bytes:
    """Raw deflate of ``data`` ending on a byte boundary (sync flush), so that pieces
    compressed independently concatenate into one valid deflate stream."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


def _pool():
    import concurrent.futures

    return concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))


def write_stream(fh, shape, dtype, blocks, chunk: int = 1 << 20) -> None:
    """Write a PNG of ``shape`` (H, W[, C]) to ``fh`` from blocks of rows, holding
    one block and its compressed form at a time (same pixels as :func:`encode`).

    Each block is deflated in pieces on all cores (zlib releases the GIL); the
    pieces end in sync flushes and form one zlib stream with one Adler-32.
    """
    h, w = shape[:2]
    c = 1 if len(shape) == 2 else shape[2]
    depth = 16 if np.dtype(dtype) == np.uint16 else 8
    fh.write(SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _COLOUR_TYPES[c], 0, 0, 0)))
    pending = [b"\x78\x9c"]  # zlib header: deflate, 32K window, default level
    size = 2
    adler = 1
    workers = max(1, os.cpu_count() or 1)
    with _pool() as pool:
        for blk in blocks:
            rows = np.ascontiguousarray(blk, dtype=">u2" if depth == 16 else np.uint8)
            rows = rows.reshape(rows.shape[0], -1).view(np.uint8)
            scan = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint8)  # filter type 0 per row
            scan[:, 1:] = rows
            data = scan.tobytes()
            adler = zlib.adler32(data, adler)
            step = -(-len(data) // workers)
            step = max(step, 1 << 16)
            for piece in pool.map(_deflate_piece, [data[i : i + step] for i in range(0, len(data), step)]):
                pending.append(piece)
                size += len(piece)
            if size >= chunk:
                fh.write(_chunk(b"IDAT", b"".join(pending)))
                pending, size = [], 0
    end = zlib.compressobj(6, zlib.DEFLATED, -15)
    pending.append(end.flush(zlib.Z_FINISH) + struct.pack(">I", adler & 0xFFFFFFFF))
    fh.write(_chunk(b"IDAT", b"".join(pending)) + _chunk(b"IEND", b""))


def header(data: bytes):
    """(width, height, bit depth, colour type, interlace) from the IHDR, or None."""
    if len(data) < 33 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


@nb.njit(**NJIT)
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

    Raises ``ValueError`` on malformed data: a chunk cut short or with a wrong
    CRC, image data that does not inflate to exactly the declared size (the
    inflated stream is bounded by that size, so a decompression bomb stops
    early), or a row filter type outside 0-4.
    """
    w, h, depth, ctype, interlace = header(data)
    if depth != 16 or ctype not in _CHANNELS or interlace:
        raise ValueError("only non-interlaced 16-bit grey/RGB/alpha PNGs are decoded here")
    c = _CHANNELS[ctype]
    pos, idat = 8, []
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        if pos + 12 + n > len(data):
            raise ValueError(f"chunk {tag!r} is cut short (file truncated)")
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        if zlib.crc32(data[pos + 4 : pos + 8 + n]) != crc:
            raise ValueError(f"CRC error in chunk {tag!r} (file damaged)")
        if tag == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + n])
        elif tag == b"IEND":
            break
        pos += 12 + n
    stride = w * c * 2
    size = h * (stride + 1)
    inflater = zlib.decompressobj()
    buf = inflater.decompress(b"".join(idat), size + 1)
    if len(buf) != size or not inflater.eof:
        raise ValueError(f"image data does not inflate to the declared {size} bytes (file damaged)")
    buf = np.frombuffer(buf, np.uint8)
    if h and int(buf[:: stride + 1].max()) > 4:
        raise ValueError("invalid row filter type (file damaged)")
    out = np.empty((h, stride), np.uint8)
    _unfilter(buf, h, stride, 2 * c, out)
    img = out.view(">u2").reshape(h, w, c).astype(np.uint16)
    return img[..., 0] if c == 1 else img

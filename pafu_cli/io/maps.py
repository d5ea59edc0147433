"""Map files: depth, disparity, optical flow or any per-pixel quantity, read and
written in their own units and bit depth.

A map is read as float32, (H, W) for one channel or (H, W, C), holding the
numbers stored in the file (a 16-bit PNG of millimetres gives millimetres, an
8-bit PNG gives 0..255); NaN and infinities of float formats are kept (a hole,
or an unknown flow, is the caller's to interpret). Formats, picked by the
extension:

========  =============================================  ==========================
ext       read                                           written as
========  =============================================  ==========================
.png      8- or 16-bit greyscale, one channel            uint8 or uint16 (one channel)
.tif      one page of 1..4 channels, any integer or      ``like.dtype`` if integer,
.tiff     float sample type                              else float32
.npy      (H, W) or (H, W, 1..4), integers or floats     ``like.dtype`` if integer or
                                                         float, else float32
.pfm      Middlebury PFM, 1 ("Pf") or 3 ("PF") channels  float32, little-endian
.flo      Middlebury optical flow, 2 channels            float32, 2 channels
========  =============================================  ==========================

Every header is checked (sizes against :func:`pafu_cli.limits.max_pixels`, data
length against the file size) before anything is decoded, and every malformed
file is an :class:`~pafu_cli.errors.InputError` of one line naming it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import struct
from pathlib import Path

import numpy as np

from pafu_cli.errors import InputError, OutputError, PafuError
from pafu_cli.io.images import _atomic_output, _short, _tiff_header, check_input_file, check_output_target
from pafu_cli.limits import check_pixels

MAP_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".pfm", ".flo")

MAP_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".pfm": "pfm", ".flo": "flo"}
_USE = "use .png, .tif/.tiff, .npy, .pfm or .flo"
_FLO_MAGIC = b"PIEH"  # the float 202021.25, little-endian
_PFM_HEAD_BYTES = 256
_WHITESPACE = b" \t\r\n\v\f"
_DIGITS = re.compile(rb"^[0-9]{1,12}$")
_PNG_GREY, _PNG_RGB, _PNG_PALETTE, _PNG_GREY_ALPHA, _PNG_RGBA = 0, 2, 3, 4, 6


@dataclasses.dataclass(frozen=True)
class MapInfo:
    """What a map file holds, from its header.

    Attributes
    ----------
    format : str
        ``"png"``, ``"tiff"``, ``"npy"``, ``"pfm"`` or ``"flo"``.
    dtype : str
        NumPy name of the stored samples (``"uint8"``, ``"uint16"``, ``"int16"``,
        ``"float32"``, ``"float64"``, ...).
    channels : int
        1 for depth or disparity, 2 for flow, up to 4.
    height, width : int
        Size in pixels.
    """

    format: str
    dtype: str
    channels: int
    height: int
    width: int


def _format_of(path) -> str:
    ext = Path(path).suffix.lower()
    fmt = MAP_FORMATS.get(ext)
    if fmt is None:
        raise InputError(f"{path}: unknown map extension {ext or '(none)'!r}; {_USE}")
    return fmt


def _check_size(path, height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise InputError(f"{path}: declares an invalid size {width} x {height}; a damaged or non-map file")
    check_pixels(path, height, width)


def _check_length(path, expected: int, found: int) -> None:
    """Refuse a file whose data is shorter or longer than its header declares."""
    if found < expected:
        raise InputError(
            f"{path}: truncated: expected {expected} bytes of data, found {found}; the file is cut short"
        )
    if found > expected:
        raise InputError(
            f"{path}: {found - expected} bytes more than the {expected} bytes of data its header "
            "declares; a damaged file or a wrong header"
        )


def _numeric_dtype(path, dtype: np.dtype, what: str) -> None:
    if dtype.kind == "O":
        raise InputError(
            f"{path}: {what} holds Python objects (a pickle), which pafu never loads; save plain numbers"
        )
    if dtype.kind not in "uif" or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(
            f"{path}: {what} has sample type {dtype}; a map holds real numbers (integers or floats)"
        )


def _layout(path, shape: tuple) -> tuple[int, int, int]:
    """(height, width, channels) of an array shape (H, W) or (H, W, C), after the checks."""
    if len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 4):
        raise InputError(f"{path}: array of shape {shape}; a map is (H, W) or (H, W, C) with 1 to 4 channels")
    h, w = shape[0], shape[1]
    _check_size(path, h, w)
    return h, w, shape[2] if len(shape) == 3 else 1


# --- PNG ----------------------------------------------------------------------------------------


def _png_info(path) -> MapInfo:
    from pafu_cli.io import _png

    with open(path, "rb") as fh:
        head = _png.header(fh.read(64))
    if head is None:
        raise InputError(f"{path}: not a PNG file (no PNG signature and header)")
    w, h, depth, ctype, _ = head
    _check_size(path, h, w)
    if ctype in (_PNG_RGB, _PNG_RGBA):
        n = 3 if ctype == _PNG_RGB else 4
        raise InputError(
            f"{path}: PNG has {n} channels (colour); a PNG map must have one channel (greyscale depth or "
            "disparity): save it as 8- or 16-bit greyscale, or use .tif/.npy/.flo for several channels"
        )
    if ctype == _PNG_GREY_ALPHA:
        raise InputError(
            f"{path}: PNG has an alpha channel (grey + alpha); a PNG map must be plain 8- or 16-bit "
            "greyscale: remove the alpha channel"
        )
    if ctype == _PNG_PALETTE:
        raise InputError(
            f"{path}: palette (indexed-colour) PNG; a PNG map must be 8- or 16-bit greyscale: convert it"
        )
    if ctype != _PNG_GREY or depth not in (8, 16):
        raise InputError(
            f"{path}: {depth}-bit PNG (colour type {ctype}); a PNG map must be 8- or 16-bit greyscale"
        )
    return MapInfo("png", "uint8" if depth == 8 else "uint16", 1, h, w)


def _png_read(path, info: MapInfo) -> np.ndarray:
    from pafu_cli.io.images import read_image

    img = read_image(path)
    if img.shape != (info.height, info.width) or img.dtype != np.dtype(info.dtype):
        raise InputError(
            f"{path}: decodes to {img.dtype} {img.shape}, not the {info.dtype} "
            f"({info.height}, {info.width}) its header declares; a damaged file"
        )
    return img


# --- TIFF ---------------------------------------------------------------------------------------


def _tiff_layout(tif, path) -> tuple[MapInfo, str]:
    _tiff_header(tif, path)  # CMYK refused, pixel limit
    page = tif.pages[0]
    if int(page.photometric) == 3:
        raise InputError(
            f"{path}: palette TIFF (indices into a colour table); a map holds values: convert it"
        )
    series = tif.series[0]
    axes, shape = series.axes, tuple(int(s) for s in series.shape)
    if axes == "YX":
        h, w, c = shape[0], shape[1], 1
    elif axes == "YXS":
        h, w, c = shape
    elif axes == "SYX":
        c, h, w = shape
    else:
        raise InputError(
            f"{path}: TIFF of shape {shape} (axes {axes}); a map is one page (H, W) or (H, W, 1..4): "
            "multi-page TIFFs are not supported"
        )
    if not 1 <= c <= 4:
        raise InputError(f"{path}: TIFF with {c} samples per pixel; a map has 1 to 4 channels")
    _check_size(path, h, w)
    dtype = np.dtype(series.dtype)
    if dtype.kind == "b":
        raise InputError(f"{path}: 1-bit (bilevel) TIFF; a map holds 8 bits or more per sample")
    _numeric_dtype(path, dtype, "TIFF")
    return MapInfo("tiff", dtype.name, c, h, w), axes


def _tiff_info(path) -> MapInfo:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        return _tiff_layout(tif, path)[0]


def _tiff_read(path) -> tuple[np.ndarray, MapInfo]:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        info, axes = _tiff_layout(tif, path)
        data = np.asarray(tif.series[0].asarray())
    if axes == "SYX":
        data = np.moveaxis(data, 0, -1)
    return data, info


# --- NPY ----------------------------------------------------------------------------------------


def _npy_header(path) -> tuple[MapInfo, int]:
    """MapInfo of a .npy file and the offset of its data, from its header alone."""
    from numpy.lib import format as npformat

    with open(path, "rb") as fh:
        try:
            version = npformat.read_magic(fh)
        except ValueError:
            raise InputError(f"{path}: not a .npy file (no NumPy array header)") from None
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = npformat.read_array_header_2_0(fh)
        else:
            raise InputError(
                f"{path}: .npy format version {version[0]}.{version[1]}; save the map with numpy.save "
                "as a plain numeric array"
            )
        offset = fh.tell()
    dtype = np.dtype(dtype)
    _numeric_dtype(path, dtype, ".npy array")
    h, w, c = _layout(path, tuple(shape))
    _check_length(path, h * w * c * dtype.itemsize, os.path.getsize(path) - offset)
    return MapInfo("npy", dtype.name, c, h, w), offset


def _npy_read(path, info: MapInfo) -> np.ndarray:
    data = np.load(path, allow_pickle=False, mmap_mode=None)
    if not isinstance(data, np.ndarray) or data.shape[:2] != (info.height, info.width):
        raise InputError(f"{path}: the .npy data does not match its header; a damaged file")
    return data


# --- PFM ----------------------------------------------------------------------------------------


def _pfm_header(path) -> tuple[MapInfo, int, str]:
    """(MapInfo, data offset, byte order '<' or '>') of a PFM file from its text header."""
    with open(path, "rb") as fh:
        head = fh.read(_PFM_HEAD_BYTES)
    if head[:2] not in (b"PF", b"Pf"):
        raise InputError(f"{path}: not a PFM file (it must start with 'PF' or 'Pf')")
    tokens, pos = [], 0
    for i in range(4):  # magic, width, height, scale
        while i and pos < len(head) and head[pos] in _WHITESPACE:
            pos += 1
        start = pos
        while pos < len(head) and head[pos] not in _WHITESPACE:
            pos += 1
        if pos >= len(head):
            raise InputError(f"{path}: PFM header incomplete (magic, width, height and scale expected)")
        tokens.append(head[start:pos])
    magic, wtext, htext, stext = tokens
    if magic not in (b"PF", b"Pf"):
        raise InputError(f"{path}: not a PFM file (magic {magic[:8]!r}, expected 'PF' or 'Pf')")
    if not (_DIGITS.match(wtext) and _DIGITS.match(htext)):
        raise InputError(
            f"{path}: PFM declares an invalid size {wtext[:16].decode('latin-1')!r} x "
            f"{htext[:16].decode('latin-1')!r}; width and height must be positive integers"
        )
    w, h = int(wtext), int(htext)
    _check_size(path, h, w)
    try:
        scale = float(stext.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        scale = math.nan
    if not math.isfinite(scale) or scale == 0:
        raise InputError(
            f"{path}: PFM scale {stext[:16].decode('latin-1')!r} is not a non-zero number; a damaged file"
        )
    c = 3 if magic == b"PF" else 1
    expected = h * w * c * 4
    size = os.path.getsize(path)
    offset = pos + 1  # the scale ends with one whitespace character ...
    if head[pos : pos + 2] == b"\r\n" and size - offset != expected:
        offset += 1  # ... or with "\r\n"
    _check_length(path, expected, size - offset)
    return MapInfo("pfm", "float32", c, h, w), offset, "<" if scale < 0 else ">"


def _pfm_read(path) -> tuple[np.ndarray, MapInfo]:
    info, offset, order = _pfm_header(path)
    shape = (info.height, info.width, info.channels) if info.channels > 1 else (info.height, info.width)
    data = np.fromfile(path, dtype=f"{order}f4", count=int(np.prod(shape)), offset=offset)
    return data.reshape(shape)[::-1], info  # stored bottom row first


# --- FLO ----------------------------------------------------------------------------------------


def _flo_header(path) -> MapInfo:
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] != _FLO_MAGIC:
        raise InputError(f"{path}: not a Middlebury .flo file (magic {head[:4]!r}, expected b'PIEH')")
    if len(head) < 12:
        raise InputError(f"{path}: truncated: the 12-byte .flo header is cut short ({len(head)} bytes)")
    w, h = struct.unpack("<ii", head[4:12])
    _check_size(path, h, w)
    _check_length(path, h * w * 8, os.path.getsize(path) - 12)
    return MapInfo("flo", "float32", 2, h, w)


def _flo_read(path) -> tuple[np.ndarray, MapInfo]:
    info = _flo_header(path)
    data = np.fromfile(path, dtype="<f4", count=info.height * info.width * 2, offset=12)
    return data.reshape(info.height, info.width, 2), info


# --- public reading -----------------------------------------------------------------------------


def _guarded(path, fn):
    """``fn()``, with anything but a PafuError turned into one line naming ``path``."""
    check_input_file(path)
    fmt = _format_of(path)
    try:
        return fn(fmt)
    except PafuError:
        raise
    except Exception as e:  # struct.error, ValueError, OSError, tifffile's errors, ...
        raise InputError(f"{path}: not a readable {fmt.upper()} map ({_short(e)})") from None


def map_info(path) -> MapInfo:
    """What a map file holds, from its header: nothing is decoded.

    Parameters
    ----------
    path : str or Path
        A ``.png``, ``.tif``/``.tiff``, ``.npy``, ``.pfm`` or ``.flo`` file.

    Returns
    -------
    MapInfo

    Raises
    ------
    InputError
        A missing, empty or special file, a folder, an unknown extension, a
        malformed header, a size beyond :func:`pafu_cli.limits.max_pixels`, a
        data length that does not match the header (``.npy``, ``.pfm``,
        ``.flo``), or samples that are not real numbers.
    """

    def info(fmt):
        if fmt == "png":
            return _png_info(path)
        if fmt == "tiff":
            return _tiff_info(path)
        if fmt == "npy":
            return _npy_header(path)[0]
        if fmt == "pfm":
            return _pfm_header(path)[0]
        return _flo_header(path)

    return _guarded(path, info)


def read_map(path) -> tuple[np.ndarray, MapInfo]:
    """Read a map in its own units.

    Parameters
    ----------
    path : str or Path
        A ``.png``, ``.tif``/``.tiff``, ``.npy``, ``.pfm`` or ``.flo`` file.

    Returns
    -------
    values : ndarray of float32, (H, W) for one channel, else (H, W, C)
        The stored numbers, unscaled (uint8 gives 0..255, uint16 0..65535);
        NaN and infinities of float files are kept; rows top to bottom (PFM's
        bottom-up rows are flipped).
    info : MapInfo
        The stored format, sample type and size (pass it to :func:`write_map`
        as ``like`` to write the result the same way).

    Raises
    ------
    InputError
        As :func:`map_info`; the header is checked before any decoding.
    """

    def read(fmt):
        if fmt == "png":
            info = _png_info(path)
            data = _png_read(path, info)
        elif fmt == "tiff":
            data, info = _tiff_read(path)
        elif fmt == "npy":
            info = _npy_header(path)[0]
            data = _npy_read(path, info)
        elif fmt == "pfm":
            data, info = _pfm_read(path)
        else:
            data, info = _flo_read(path)
        if data.ndim == 3 and data.shape[2] == 1:
            data = data[..., 0]
        return np.ascontiguousarray(data, dtype=np.float32), info

    return _guarded(path, read)


# --- writing ------------------------------------------------------------------------------------


def check_map_target(path, overwrite: bool) -> str:
    """The format of an output map ``path``, after the checks of
    :func:`pafu_cli.io.images.check_output_target` (known extension, no folder,
    no special file, no existing file unless ``overwrite``, an existing folder)."""
    return check_output_target(path, overwrite, MAP_FORMATS, _USE)


def _to_integer(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` rounded half away from zero, clipped to ``dtype``'s range, NaN as 0."""
    x = np.asarray(values, dtype=np.float64)
    t = np.trunc(x)
    with np.errstate(invalid="ignore"):
        x = t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0.0)  # x - t is exact
    info = np.iinfo(dtype)
    lo, hi = float(info.min), float(info.max)
    if hi > info.max:  # 2**63 - 1 rounds up as a float
        hi = float(np.nextafter(hi, 0.0))
    x = np.clip(x, lo, hi)
    x[np.isnan(x)] = 0
    return x.astype(dtype)


def _to_float(values: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond float32: +-inf
        return np.asarray(values).astype(dtype)


def _stored_dtype(fmt: str, like: MapInfo | None) -> np.dtype:
    want = np.dtype(like.dtype) if like is not None else None
    if fmt == "png":
        return np.dtype(np.uint8) if want == np.uint8 else np.dtype(np.uint16)
    if fmt in ("tiff", "npy") and want is not None and want.kind in "ui":
        return want
    if fmt == "npy" and want is not None and want.kind == "f":
        return want
    return np.dtype(np.float32)


def write_map(path, values: np.ndarray, like: MapInfo | None = None, overwrite: bool = False) -> None:
    """Write a map atomically, in the format of ``path``'s extension.

    Parameters
    ----------
    path : str or Path
        Output ``.png``, ``.tif``/``.tiff``, ``.npy``, ``.pfm`` or ``.flo`` file.
    values : ndarray, (H, W) or (H, W, C) with C in 1..4
        Real numbers in the map's units.
    like : MapInfo, optional
        The input's :class:`MapInfo` (from :func:`read_map`), whose ``dtype``
        is kept where the format allows:

        - ``.png``: uint8 if ``like.dtype`` is uint8, else uint16 (floats are
          clipped to 0..65535); one channel only;
        - ``.tif``: ``like.dtype`` if it is an integer type, else float32;
        - ``.npy``: ``like.dtype`` if it is an integer or float type, else float32;
        - ``.pfm``: float32, 1 or 3 channels; ``.flo``: float32, 2 channels.

        Integer outputs are rounded half away from zero and clipped to the
        type's range; NaN becomes 0.
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error.

    Raises
    ------
    OutputError
        Unknown extension, existing file without ``overwrite``, missing or
        unwritable folder, or a channel count the format cannot hold.
    TypeError, ValueError
        ``values`` is not a non-empty (H, W) or (H, W, 1..4) array of real numbers.
    """
    fmt = check_map_target(path, overwrite)
    values = np.asarray(values)
    if values.dtype.kind not in "buif":
        raise TypeError(f"write_map needs real numbers, got {values.dtype}")
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[2] > 4) or values.size == 0:
        raise ValueError(f"write_map needs a non-empty (H, W) or (H, W, 1..4) array, got {values.shape}")
    channels = 1 if values.ndim == 2 else values.shape[2]
    allowed = {"png": (1,), "pfm": (1, 3), "flo": (2,)}.get(fmt, (1, 2, 3, 4))
    if channels not in allowed:
        hint = {
            "png": "a PNG map holds one channel",
            "pfm": "a PFM holds 1 or 3 channels",
            "flo": "a .flo file holds exactly 2 channels (u, v)",
        }[fmt]
        raise OutputError(f"{path}: the map has {channels} channel(s); {hint}: use .tif or .npy")
    dtype = _stored_dtype(fmt, like)
    data = _to_integer(values, dtype) if dtype.kind in "ui" else _to_float(values, dtype)
    h, w = data.shape[:2]
    with _atomic_output(path, overwrite) as fh:
        if fmt == "png":
            from pafu_cli.io import _png

            fh.write(_png.encode(data))
        elif fmt == "tiff":
            import tifffile

            tifffile.imwrite(fh, data, photometric="minisblack", planarconfig="contig", compression=None)
        elif fmt == "npy":
            np.save(fh, data, allow_pickle=False)
        elif fmt == "pfm":
            fh.write(b"%s\n%d %d\n-1.0\n" % (b"PF" if channels == 3 else b"Pf", w, h))
            fh.write(np.ascontiguousarray(data[::-1], dtype="<f4").tobytes())
        else:
            fh.write(_FLO_MAGIC + struct.pack("<ii", w, h))
            fh.write(np.ascontiguousarray(data, dtype="<f4").tobytes())


# --- previews -----------------------------------------------------------------------------------

# A perceptual, viridis-like ramp (dark violet, blue, teal, green, yellow) whose
# luminance rises at every stop; linear between stops.
_RAMP = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    np.float64,
)
FLOW_UNKNOWN = 1e9  # .flo convention: a component beyond this is an unknown flow


def _colormap_lut() -> np.ndarray:
    stops = np.linspace(0.0, 1.0, len(_RAMP))
    t = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(t, stops, _RAMP[:, k]) for k in range(3)], axis=-1)
    return np.rint(lut).astype(np.uint8)


def _preview_scalar(values: np.ndarray) -> np.ndarray:
    out = np.zeros(values.shape + (3,), np.uint8)
    finite = np.isfinite(values)
    if not finite.any():
        return out
    v = values[finite].astype(np.float64)
    lo, hi = np.percentile(v, [1.0, 99.0])
    t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    idx = np.rint(np.clip(t, 0.0, 1.0) * 255).astype(np.intp)
    out[finite] = _colormap_lut()[idx]
    return out


def _preview_flow(values: np.ndarray) -> np.ndarray:
    u = values[..., 0].astype(np.float64)
    v = values[..., 1].astype(np.float64)
    out = np.zeros(values.shape[:2] + (3,), np.uint8)
    with np.errstate(invalid="ignore"):
        known = np.isfinite(u) & np.isfinite(v) & (np.abs(u) <= FLOW_UNKNOWN) & (np.abs(v) <= FLOW_UNKNOWN)
    if not known.any():
        return out
    u, v = u[known], v[known]
    mag = np.hypot(u, v)
    top = float(np.percentile(mag, 99.0))
    sat = np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)
    hue = (np.arctan2(v, u) / (2 * np.pi)) % 1.0 * 6.0  # 0 = +u (red), 2 = +v (green), 4 = -u (blue)
    # HSV with value 1 to RGB: channel n (R 5, G 3, B 1) is 1 - s * clip(min(k, 4 - k), 0, 1)
    # with k = (n + hue) mod 6
    rgb = np.empty(sat.shape + (3,))
    for ch, n in enumerate((5, 3, 1)):
        k = (n + hue) % 6.0
        rgb[:, ch] = 1.0 - sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    out[known] = np.rint(rgb * 255).astype(np.uint8)
    return out


def preview_map(values: np.ndarray) -> np.ndarray:
    """A colour picture of a map, for looking at it.

    Parameters
    ----------
    values : ndarray, (H, W) or (H, W, 1) for a scalar map, (H, W, 2) for flow

    Returns
    -------
    ndarray of uint8, (H, W, 3)
        A scalar map goes through a perceptual ramp (dark violet to yellow,
        brighter for larger values) over its 1st..99th percentile of finite
        values. Flow uses the colour wheel: hue is the direction (+u red, +v
        green, -u cyan-blue), saturation the magnitude over its 99th percentile,
        value 1 (no motion is white). Holes (NaN, infinities, unknown flow
        beyond 1e9) are black.

    Raises
    ------
    ValueError
        Any other shape.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "buif":
        raise ValueError(f"preview_map needs real numbers, got {values.dtype}")
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim == 2:
        return _preview_scalar(values)
    if values.ndim == 3 and values.shape[2] == 2:
        return _preview_flow(values)
    raise ValueError(f"preview_map takes (H, W) or (H, W, 2) flow, got {values.shape}")

"""Reading RAW files with rawpy (LibRaw): the mosaic and the metadata to render it,
with LibRaw's failures mapped to one-line reasons. Every array is copied out
before the file is closed (rawpy's arrays are views into LibRaw memory)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

from pafu_cli.cfa import PATTERNS
from pafu_cli.errors import InputError
from pafu_cli.io.images import check_input_file
from pafu_cli.raw.render import camera_to_srgb

RAW_EXTENSIONS = (
    ".dng",
    ".cr2",
    ".cr3",
    ".crw",
    ".nef",
    ".nrw",
    ".arw",
    ".srf",
    ".sr2",
    ".rw2",
    ".orf",
    ".pef",
    ".kdc",
    ".dcr",
    ".raf",
    ".srw",
    ".3fr",
    ".fff",
    ".iiq",
    ".mos",
    ".mrw",
    ".x3f",
    ".erf",
    ".mef",
    ".raw",
    ".rwl",
    ".gpr",
    ".k25",
    ".dc2",
)


# A mosaic whose samples are mostly exact zeros, or whose last rows are all
# zero, is what LibRaw returns for a file whose image data is missing: it does
# not raise for those (see shared/raw/SOURCES.md, truncated/).
_EMPTY_ZERO_SHARE = 0.5


# Metadata-only files can also decode to LibRaw's stale buffer contents (a
# previous file's pixels), so the file size is checked first: even lossy raw
# data needs well over half a bit per pixel.
_MIN_BYTES_PER_PIXEL = 1 / 16


_EMPTY_ROW_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class RawData:
    """A Bayer RAW file's mosaic and the metadata needed to render it.

    Colour-indexed arrays follow LibRaw's order R, G, B, G2.
    """

    path: str
    cfa: np.ndarray  # (H, W) uint16, the visible area, copied
    pattern: str  # "RGGB", "BGGR", "GRBG" or "GBRG" at cfa[0, 0]
    black: np.ndarray  # (4,) float32 black level per colour
    white: float  # white level (raw units, before black subtraction)
    camera_wb: np.ndarray  # (4,) as-shot multipliers (0 or -1: missing)
    daylight_wb: np.ndarray  # (4,) daylight multipliers
    color_matrix: np.ndarray  # (3, 4) camera -> sRGB from the file (zeros if none)
    rgb_xyz_matrix: np.ndarray  # (4, 3) LibRaw's built-in camera matrix (zeros if none)
    flip: int  # LibRaw orientation code: 0, 3, 5 or 6
    is_dng: bool
    iso: float | None = None
    # (3, 3) camera -> sRGB matrix LibRaw applies, measured by probing LibRaw
    # (see probe_libraw_matrix); only set when the fields above give none.
    probed_matrix: np.ndarray | None = None


@contextlib.contextmanager
def _quiet_libraw():
    """Silence LibRaw's own C-level warnings on fd 2 ("data corrupted at ...");
    the problem is reported once, as an InputError, instead."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def libraw_errors():
    import rawpy

    return (rawpy.LibRawError, rawpy.NotSupportedError)


def raw_pixel_count(path) -> int:
    """Visible pixels of a RAW file, from its header only (nothing is decoded)."""
    import rawpy

    check_input_file(path)
    try:
        with _quiet_libraw(), rawpy.imread(str(path)) as raw:
            s = raw.sizes
            return int(s.width) * int(s.height)
    except libraw_errors() as e:
        raise InputError(_raw_reason(path, e)) from None


def _raw_reason(path, e) -> str:
    import rawpy

    name = type(e).__name__
    if isinstance(e, (rawpy.LibRawFileUnsupportedError, rawpy.NotSupportedError)):
        why = "unsupported format or not a RAW file (LibRaw cannot decode it)"
    elif isinstance(e, (rawpy.LibRawIOError, rawpy.LibRawDataError)):
        why = "truncated or no image data (LibRaw: input/data error)"
    else:
        why = f"LibRaw cannot read it ({name}: {e})"
    return f"{path}: {why}"


def _pattern(raw, path) -> str:
    import rawpy

    if raw.raw_type != rawpy.RawType.Flat:
        if Path(path).suffix.lower() == ".dng":
            raise InputError(
                f"{path}: already demosaicked (LinearRaw DNG, no colour filter mosaic); "
                "open it in an image editor instead"
            )
        raise InputError(
            f"{path}: not a 2x2 Bayer sensor (LibRaw decodes it to a multi-channel image "
            "without a colour filter mosaic)"
        )
    full = raw.raw_pattern
    if full is None or full.shape != (2, 2):
        shape = "none" if full is None else "x".join(map(str, full.shape))
        if full is not None and full.shape == (6, 6):
            raise InputError(
                f"{path}: X-Trans sensor (6x6 colour filter) is not supported; "
                "pafu demosaicks 2x2 Bayer mosaics only"
            )
        raise InputError(f"{path}: not a 2x2 Bayer sensor (colour filter pattern {shape})")
    desc = raw.color_desc.decode("ascii", "replace")
    # The colours of the visible area's first 2x2 samples (raw_colors_visible would
    # build a whole-image array for these four values).
    s = raw.sizes
    idx = [raw.raw_color(s.top_margin + y, s.left_margin + x) for y in range(2) for x in range(2)]
    try:
        pattern = "".join(desc[int(i)] for i in idx)
    except IndexError:
        pattern = "?"
    if pattern not in PATTERNS:
        raise InputError(
            f"{path}: not a 2x2 Bayer sensor (colours {pattern!r}, "
            f"description {desc!r}); expected one of {', '.join(PATTERNS)}"
        )
    return pattern


def _check_not_empty(cfa: np.ndarray, black: np.ndarray, path) -> None:
    n = cfa.size
    zeros = n - np.count_nonzero(cfa)
    if cfa.max() <= black.min() or zeros > _EMPTY_ZERO_SHARE * n:
        raise InputError(
            f"{path}: truncated or no image data (the decoded mosaic is "
            f"{100 * zeros / n:.1f}% zeros); the file is damaged or metadata-only"
        )
    tail = max(1, int(_EMPTY_ROW_SHARE * cfa.shape[0]))
    if not np.any(cfa[-tail:]):
        raise InputError(
            f"{path}: truncated (the last {tail} rows of the mosaic are empty); the file is damaged"
        )


def read_raw(path) -> RawData:
    """Read a Bayer RAW file (any format LibRaw knows) and copy out what rendering needs.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    RawData

    Raises
    ------
    InputError
        Missing, unreadable, unsupported, truncated, already demosaicked,
        X-Trans or other non-Bayer files, with a one-line message naming the file.
    """
    import rawpy

    path = str(path)
    check_input_file(path)
    try:
        with _quiet_libraw(), rawpy.imread(path) as raw:
            # Metadata first: postprocess() would change pattern and flip.
            pattern = _pattern(raw, path)
            if raw.num_colors != 3:
                raise InputError(
                    f"{path}: {raw.num_colors}-colour sensor is not supported "
                    "(pafu needs an RGB Bayer mosaic)"
                )
            n_raw = int(raw.sizes.raw_width) * int(raw.sizes.raw_height)
            size = os.path.getsize(path)
            if size < n_raw * _MIN_BYTES_PER_PIXEL:
                raise InputError(
                    f"{path}: truncated or no image data ({size} bytes for a "
                    f"{raw.sizes.raw_width}x{raw.sizes.raw_height} sensor); "
                    "the file is damaged or metadata-only"
                )
            cfa = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
            other = getattr(raw, "other", None)
            iso = float(getattr(other, "iso_speed", 0.0) or 0.0) if other is not None else 0.0
            data = RawData(
                path=path,
                cfa=cfa,
                pattern=pattern,
                black=np.array(raw.black_level_per_channel, np.float32).copy(),
                white=float(raw.white_level),
                camera_wb=np.array(raw.camera_whitebalance, np.float32).copy(),
                daylight_wb=np.array(raw.daylight_whitebalance, np.float32).copy(),
                color_matrix=np.array(raw.color_matrix, np.float32).copy(),
                rgb_xyz_matrix=np.array(raw.rgb_xyz_matrix, np.float32).copy(),
                flip=int(raw.sizes.flip),
                is_dng=Path(path).suffix.lower() == ".dng",
                iso=iso if iso > 0 else None,
            )
            # Last: the probe overwrites the mosaic (copied above) and LibRaw state.
            if camera_to_srgb(data.color_matrix, data.rgb_xyz_matrix, data.is_dng, False) is None:
                data = dataclasses.replace(data, probed_matrix=_probe(raw, pattern, data.black))
    except libraw_errors() as e:
        raise InputError(_raw_reason(path, e)) from None
    if cfa.ndim != 2 or min(cfa.shape) < 2:
        raise InputError(f"{path}: truncated or no image data (mosaic shape {cfa.shape})")
    _check_not_empty(cfa, data.black, path)
    return data


def _probe(raw, pattern, black):
    from pafu_cli.raw.probe import probe_libraw_matrix  # it uses this module's LibRaw helpers

    return probe_libraw_matrix(raw, pattern, black)

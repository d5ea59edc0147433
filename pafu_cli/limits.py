"""Resource limits set by environment variables, checked before anything is allocated.

``PAFU_MEMORY_LIMIT`` (a size such as ``2G``, ``512MB``, ``1.5GiB`` or bytes) caps
the memory a file job may plan to use; by default 80% of the available memory.
``PAFU_MAX_MODEL_BYTES`` caps the arrays a model file may declare (256 MiB).
``PAFU_MAX_PIXELS`` caps the pixels an input image may declare in its header
(default :data:`DEFAULT_MAX_PIXELS`), as Pillow's ``MAX_IMAGE_PIXELS`` does: a
few-MB compressed file can declare gigapixels (a decompression bomb), and this
check refuses it before any decoding.
"""

from __future__ import annotations

import math
import os
import re

from pafu_cli.errors import ConfigError, InputError

DEFAULT_MAX_PIXELS = 1 << 28  # 268 MP: a 20000 x 13000 panorama passes
DEFAULT_MAX_MODEL_BYTES = 256 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, name: str) -> int:
    """Bytes of a size written as ``2G``, ``2GB``, ``2GiB``, ``512M``, ``1.5T`` or a
    plain number of bytes (units are powers of 1024). Raises :class:`ConfigError`
    naming the variable for anything else (``abc``, ``nan``, ``-1``, ``0``)."""
    m = _SIZE.match(text)
    value = float(m.group(1)) * _UNITS[m.group(2).upper()] if m else math.nan
    if not (math.isfinite(value) and value >= 1):
        raise ConfigError(f"{name}={text!r} is not a size; use e.g. 2G, 512M or a number of bytes")
    return int(value)


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise ConfigError(f"{name}={text!r} is not a positive number; e.g. {name}={default}")
    return int(value)


def memory_limit() -> int:
    """Bytes one job may use: ``PAFU_MEMORY_LIMIT``, else 80% of the available memory."""
    env = os.environ.get("PAFU_MEMORY_LIMIT", "").strip()
    if env:
        return parse_size(env, "PAFU_MEMORY_LIMIT")
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 * 8 // 10
    except OSError:
        pass
    return 8 << 30


def max_pixels() -> int:
    """Pixels an input image may declare: ``PAFU_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    return _positive_int("PAFU_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_model_bytes() -> int:
    """Bytes of arrays a model file may declare: ``PAFU_MAX_MODEL_BYTES`` or
    :data:`DEFAULT_MAX_MODEL_BYTES` (shipped models hold about 1 MB)."""
    env = os.environ.get("PAFU_MAX_MODEL_BYTES", "").strip()
    return parse_size(env, "PAFU_MAX_MODEL_BYTES") if env else DEFAULT_MAX_MODEL_BYTES


def check_environment() -> None:
    """Parse every limit once, so that a bad setting stops a run before its first file."""
    memory_limit()
    max_pixels()
    max_model_bytes()


def check_pixels(path, height: int, width: int) -> None:
    """Refuse an image whose header declares more than :func:`max_pixels` pixels."""
    cap = max_pixels()
    if height * width > cap:
        raise InputError(
            f"{path}: declares {width} x {height} = {height * width / 1e6:.0f} MP, more than the "
            f"{cap / 1e6:.0f} MP limit (a damaged file or a decompression bomb); "
            "set PAFU_MAX_PIXELS to raise the limit"
        )


def check_memory(path, needed: int, what: str) -> None:
    """Refuse an image whose processing would need more than :func:`memory_limit`."""
    limit = memory_limit()
    if needed > limit:
        raise InputError(
            f"{path}: image too large for memory ({what} needs about "
            f"{needed / 2**30:.1f} GiB, {limit / 2**30:.1f} GiB available); "
            "crop or downscale it first, or set PAFU_MEMORY_LIMIT"
        )

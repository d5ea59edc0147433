"""What every file job does with its outputs: refuse to overwrite, quantise."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def refuse_existing(path, overwrite: bool) -> None:
    if path is not None and Path(path).exists() and not overwrite:
        from pafu_cli.errors import OutputError

        raise OutputError(f"{path}: file exists; use --overwrite to replace it")


def to_bits(x01: np.ndarray, bits: int) -> np.ndarray:
    top = 255 if bits == 8 else 65535
    out = np.clip(x01, 0, 1) * np.float32(top)
    np.rint(out, out=out)
    return out.astype(np.uint8 if bits == 8 else np.uint16)

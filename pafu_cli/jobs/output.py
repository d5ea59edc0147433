"""What every file job does with its outputs: refuse to overwrite, quantise."""

from __future__ import annotations

import os

import numpy as np

from pafu_cli.errors import OutputError
from pafu_cli.io.images import check_output_target


def check_targets(dst, selection_map, overwrite: bool) -> None:
    """Every check of a job's output paths that needs no work, made before any work:
    the output and the selection map (if any) are writable image names, and not
    the same file."""
    check_output_target(dst, overwrite)
    if selection_map is not None:
        check_output_target(selection_map, overwrite)
        if os.path.abspath(selection_map) == os.path.abspath(dst):
            raise OutputError(
                f"{selection_map}: the selection map would replace the output; give another name"
            )


def to_bits(x01: np.ndarray, bits: int) -> np.ndarray:
    top = 255 if bits == 8 else 65535
    out = np.clip(x01, 0, 1) * np.float32(top)
    np.rint(out, out=out)
    return out.astype(np.uint8 if bits == 8 else np.uint16)

"""Run a PAFU model on an array: selector, per-pixel argmax, kernel apply.

This is the array-level core shared by :mod:`pafu_cli.demosaick` and
:mod:`pafu_cli.superres`; it converts the model's PyTorch-ordered weights to the
HWC layout the kernels in :mod:`pafu_cli._kernels` expect.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from .models import PafuModel


def _hwio(w: np.ndarray) -> np.ndarray:
    """(Co, Ci, k, k) -> (k, k, Ci, Co), contiguous float32."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype=np.float32)


def select(model: PafuModel, x: np.ndarray) -> np.ndarray:
    """Per-pixel kernel index (H, W) int32 chosen by the selector for ``x`` (H, W, C_in)."""
    h, w, _ = x.shape
    feat = np.ascontiguousarray(
        (x - model.selector_input_mean) * model.selector_input_scale, dtype=np.float32
    )
    n_layers = len(model.selector_weights)
    for i in range(n_layers - 1):
        wt = _hwio(model.selector_weights[i])
        out = np.empty((h, w, wt.shape[3]), dtype=np.float32)
        _kernels.conv2d(feat, wt, model.selector_biases[i], True, out)
        feat = out
    idx = np.empty((h, w), dtype=np.int32)
    _kernels.conv2d_argmax(
        feat, _hwio(model.selector_weights[-1]), model.selector_biases[-1], idx
    )
    return idx


def filter_selected(model: PafuModel, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Apply kernel ``idx[y, x]`` of the bank at every pixel: (H, W, C_out) float32."""
    bank = np.ascontiguousarray(np.transpose(model.bank, (0, 3, 4, 2, 1)), dtype=np.float32)
    radii = ((model.kernel_sizes - 1) // 2).astype(np.int32)
    out = np.empty(x.shape[:2] + (model.out_channels,), dtype=np.float32)
    _kernels.apply_bank(x, idx, bank, radii, out)
    return out


def run(model: PafuModel, x: np.ndarray):
    """Selector plus filtering on ``x`` (H, W, C_in) float32.

    Returns
    -------
    out : ndarray (H*f, W*f, C_out / f^2) float32
        Filtered result after depth-to-space by ``model.shuffle``.
    idx : ndarray (H, W) int32
        The kernel chosen at each pixel.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    idx = select(model, x)
    y = filter_selected(model, x, idx)
    return depth_to_space(y, model.shuffle), idx


def depth_to_space(y: np.ndarray, s: int) -> np.ndarray:
    """(H, W, C*s*s) -> (H*s, W*s, C) in PyTorch ``pixel_shuffle`` channel order."""
    h, w, cs = y.shape
    out = np.empty((h * s, w * s, cs // (s * s)), dtype=np.float32)
    _kernels.depth_to_space(np.ascontiguousarray(y, dtype=np.float32), s, out)
    return out

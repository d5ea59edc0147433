"""PAC in PyTorch, for training (needs the optional ``train`` extra: PyTorch).

``layers``: :func:`pac_conv2d`, :func:`pac_conv_transpose2d` and :func:`pac_pool2d` on
NCHW tensors, differentiable, with exactly the semantics of the NumPy/Numba
operators of :mod:`pafu_cli.pac` (so that a network trained here runs with the
engine), and the :class:`PacConv2d` / :class:`PacConvTranspose2d` modules.
"""

from __future__ import annotations

from pafu_cli.training.pac.layers import (
    PacConv2d,
    PacConvTranspose2d,
    block_mean,
    mask_to_nchw,
    pac_conv2d,
    pac_conv_transpose2d,
    pac_kernel,
    pac_pool2d,
    to_hwc,
    to_nchw,
    transposed_padding,
)

__all__ = [
    "PacConv2d",
    "PacConvTranspose2d",
    "block_mean",
    "mask_to_nchw",
    "pac_conv2d",
    "pac_conv_transpose2d",
    "pac_kernel",
    "pac_pool2d",
    "to_hwc",
    "to_nchw",
    "transposed_padding",
]

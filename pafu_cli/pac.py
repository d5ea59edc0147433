"""Public PAC API (pixel-adaptive convolution, Su et al., CVPR 2019): the operators
and guided upsampling of low-resolution maps, NumPy arrays in and out.

>>> import numpy as np
>>> from pafu_cli import pac
>>> depth = np.array([[1, 1, 5, 5]], np.float32)                 # a low-res depth step
>>> photo = np.repeat(np.array([[0] * 4 + [255] * 4], np.uint8), 2, axis=0)[:, :, None]
>>> pac.jbu(depth, photo).round(2)[0].tolist()                    # the step stays sharp
[1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0]
>>> pac.resize(depth, (2, 8), "bicubic")[0].astype(float).round(2).tolist()  # unguided: blurred
[1.0, 0.91, 0.73, 1.81, 4.19, 5.27, 5.09, 5.0]
"""

from __future__ import annotations

from pafu_cli.filters.pac.ops import pac_conv2d, pac_conv2d_adjoint, pac_conv_transpose2d, pac_pool2d
from pafu_cli.filters.pac.resample import jbu, resize

__all__ = ["pac_conv2d", "pac_conv2d_adjoint", "pac_conv_transpose2d", "pac_pool2d", "jbu", "resize"]

"""Public PAC API (pixel-adaptive convolution, Su et al., CVPR 2019): the operators
and guided upsampling of low-resolution maps, NumPy arrays in and out.

>>> import numpy as np
>>> from pafu_cli import pac
>>> depth = np.array([[1, 1, 5, 5]], np.float32)                 # a low-res depth step
>>> photo = np.repeat(np.array([[0] * 3 + [255] * 5], np.uint8), 2, axis=0)[:, :, None]
>>> pac.jbu(depth, photo).round(2)[0].tolist()                    # the step follows the photo
[1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0]
"""

from __future__ import annotations

from pafu_cli.filters.pac.ops import pac_conv2d, pac_conv2d_adjoint, pac_conv_transpose2d, pac_pool2d
from pafu_cli.filters.pac.resample import jbu, resize

__all__ = ["pac_conv2d", "pac_conv2d_adjoint", "pac_conv_transpose2d", "pac_pool2d", "jbu", "resize"]

"""pafu: content-adaptive filtering on the CPU: Pixel Adaptive Filtering Units (PAFU)
and pixel-adaptive convolution (PAC).

Importing the package is cheap (NumPy only); Numba is imported on first use.
"""

__version__ = "0.1.0"

from pafu_cli import _cache  # noqa: E402

_cache.setup()  # before Numba is imported

from pafu_cli.demosaick import demosaick  # noqa: E402
from pafu_cli.filters.pafu.model import load_model  # noqa: E402
from pafu_cli.guided import guided_upsample  # noqa: E402
from pafu_cli.superres import upscale  # noqa: E402

__all__ = ["demosaick", "upscale", "guided_upsample", "load_model", "__version__"]

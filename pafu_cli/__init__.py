"""pafu: content-adaptive linear filtering (Pixel Adaptive Filtering Units) on the CPU.

Importing the package is cheap (NumPy only); Numba is imported on first use.
"""

__version__ = "0.1.0"

from pafu_cli import _cache  # noqa: E402

_cache.setup()  # before Numba is imported

from pafu_cli.demosaick import demosaick  # noqa: E402
from pafu_cli.filters.pafu.model import load_model  # noqa: E402
from pafu_cli.superres import upscale  # noqa: E402

__all__ = ["demosaick", "upscale", "load_model", "__version__"]

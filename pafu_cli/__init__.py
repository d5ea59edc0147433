"""pafu: content-adaptive linear filtering (Pixel Adaptive Filtering Units) on the CPU.

Importing the package is cheap (NumPy only); Numba is imported on first use.
"""

__version__ = "0.1.0"

from .demosaick import demosaick  # noqa: E402
from .models import load_model  # noqa: E402
from .superres import upscale  # noqa: E402

__all__ = ["demosaick", "upscale", "load_model", "__version__"]

"""PAFU: the model (schema v1/v2 fields, load/save), the banded Numba engine and its
SIMD kernels, and the hand-made analytic banks."""

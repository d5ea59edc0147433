"""Numba settings and small helpers shared by every compiled kernel of the package.

JIT option sets, defined once here; each module uses the set it has always used:

``NJIT``
    ``nogil``, on-disk ``cache``; no fastmath, so every float operation rounds
    exactly as written (the RAW render kernels must match NumPy bit for bit).
``NJIT_PARALLEL``
    ``NJIT`` with ``parallel`` (``prange`` loops).
``NJIT_CONTRACT``
    ``NJIT`` with ``fastmath={"contract"}``: LLVM may fuse ``a * b + c`` into one
    fused multiply-add (the PAFU engine's convolutions). Nothing else of
    fastmath: no reassociation, no reciprocal tricks, NaN and inf kept.
``NJIT_CONTRACT_PARALLEL``
    ``NJIT_CONTRACT`` with ``parallel``.

Every kernel also runs with ``NUMBA_DISABLE_JIT=1`` (as plain, slow Python, to
step through it or measure coverage): the helpers here use only operations that
NumPy scalars support as well.
"""

from __future__ import annotations

import numba as nb
import numpy as np

NJIT = dict(nogil=True, cache=True)


NJIT_PARALLEL = dict(NJIT, parallel=True)


NJIT_CONTRACT = dict(NJIT, fastmath={"contract"})


NJIT_CONTRACT_PARALLEL = dict(NJIT_CONTRACT, parallel=True)


JIT_DISABLED = bool(nb.config.DISABLE_JIT)


@nb.njit(inline="always", **NJIT)
def reflect(i, n):
    """Index ``i`` mirrored into ``[0, n)`` without repeating the edge sample.

    The index ``numpy.pad(mode="reflect")`` reads, for any pad: the reflection is
    repeated (period ``2 (n - 1)``) when ``i`` lies more than ``n - 1`` outside;
    every index is 0 when ``n`` is 1.
    """
    if 0 <= i < n:  # the common case, without the integer division below
        return i
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = i % period
    if i < 0:
        i += period
    if i >= n:
        i = period - i
    return i


@nb.njit(inline="always", **NJIT)
def fma32(a, b, c):
    """``a * b + c`` of float32 values with a single rounding (a fused multiply-add),
    bit for bit the hardware's (``llvm.fma.f32``), on any machine.

    The product of two float32 values is exact in float64 (24 + 24 significant
    bits < 53), so only the sum ``s = p + c`` is rounded, with error ``e`` found
    exactly by Knuth's two-sum. Rounding ``s`` to float32 directly could round
    twice wrongly when ``s`` falls on a float32 midpoint; so ``s`` is first moved
    to its odd neighbour in the direction of ``e`` when it is inexact and even
    ("round to odd", which makes the second rounding the correct one for any
    target with at least two fewer bits: Boldo and Melquiond, 2008).
    """
    p = np.float64(a) * np.float64(b)
    cd = np.float64(c)
    s = p + cd
    bp = s - p
    e = (p - (s - bp)) + (cd - bp)
    if e != 0.0 and abs(s) < np.inf:
        bits = np.float64(s).view(np.int64)
        if bits & 1 == 0:
            # One step away from zero when e points away from zero, else towards it.
            bits = bits + (1 if (e > 0.0) == (s > 0.0) else -1)
            s = np.int64(bits).view(np.float64)
    return np.float32(s)


@nb.njit(inline="always", **NJIT_CONTRACT)
def fmadd(a, b, c):
    """``a * b + c`` rounded once (a fused multiply-add), for kernels compiled with
    ``NJIT_CONTRACT`` (inlined, it takes the caller's flags): compiled, LLVM
    contracts the multiply and the add into the hardware's FMA instruction
    (scalar or vector, so loops still vectorise); as plain Python
    (``NUMBA_DISABLE_JIT``) it is :func:`fma32`, the same bits. The self-check
    that the tests run (:func:`pafu_cli.filters.pafu._simd.self_check`) verifies
    the compiled contraction against explicit ``llvm.fma``.
    """
    if JIT_DISABLED:
        return fma32(a, b, c)
    return a * b + c

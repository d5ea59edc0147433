"""Shared Numba helpers and small kernels against plain NumPy / exact arithmetic,
and the engine end to end against the plain-NumPy reference."""

import dataclasses
from fractions import Fraction

import numba
import numpy as np
import pytest
import reference as ref
from conftest import ATOL, random_model

from pafu_cli._numba import fma32, reflect
from pafu_cli.cfa import pack_bayer
from pafu_cli.filters.pafu import engine


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12])
def test_reflect_matches_numpy_pad(n):
    idx = np.arange(-3 * n - 5, 4 * n + 6)
    got = np.array([reflect(i, n) for i in idx])
    if n == 1:
        assert np.all(got == 0)
        return
    pad = 3 * n + 5
    want = np.pad(np.arange(n), (pad, pad + 1), mode="reflect")[idx + pad]
    np.testing.assert_array_equal(got, want)


def _fma_exact(a, b, c):
    """``a * b + c`` rounded once to float32 (ties to even), from exact rationals."""
    x = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if x == 0:
        return np.float32(float(a) * float(b) + float(c))  # the sign of an exact zero
    e = max(abs(x).numerator.bit_length() - abs(x).denominator.bit_length() - 25, -149 - 1)
    while abs(x) / Fraction(2) ** e >= 2**24:
        e += 1
    while e > -149 and abs(x) / Fraction(2) ** e < 2**23:
        e -= 1
    m = round(x / Fraction(2) ** e)  # Python rounds half to even
    with np.errstate(over="ignore"):  # beyond the float32 range: inf
        return np.float32(m * 2.0**e)


@numba.njit
def _fma_many(a, b, c, out):
    for i in range(a.size):
        out[i] = fma32(a[i], b[i], c[i])


def test_fma32_is_a_correctly_rounded_fused_multiply_add(rng):
    n = 3000
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    c = rng.standard_normal(n).astype(np.float32)
    # Double-rounding traps: c with an odd last bit, a * b = half an ulp of c times (1 -+ 2^-k):
    # float64(a) * b + c lands exactly on a float32 midpoint and then rounds the wrong way.
    t = slice(0, n // 3)
    c[t] = (np.abs(c[t]).view(np.int32) | 1).view(np.float32)
    k = rng.integers(14, 24, n // 3)
    a[t] = (1 + 2.0**-k) * np.spacing(c[t]).astype(np.float64) / 2
    b[t] = -(1 - 2.0**-k) * rng.choice([-1, 1], n // 3)
    # Cancellation: c = -(a * b) rounded.
    u = slice(n // 3, 2 * n // 3)
    c[u] = -(a[u].astype(np.float64) * b[u]).astype(np.float32)
    got = np.empty(n, np.float32)
    _fma_many(a, b, c, got)
    want = np.array([_fma_exact(*v) for v in zip(a, b, c)], np.float32)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    # The traps are real: rounding the float64 sum would differ there.
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    assert np.mean(naive[t] != want[t]) > 0.5
    # Plain Python (as with NUMBA_DISABLE_JIT) gives the same bits.
    py = np.array([fma32.py_func(*v) for v in zip(a[:300], b[:300], c[:300])], np.float32)
    np.testing.assert_array_equal(py.view(np.int32), want[:300].view(np.int32))


def test_fma32_special_values():
    vals = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 3e38, 1e-45], np.float32)
    a, b, c = (v.ravel() for v in np.meshgrid(vals, vals, vals))
    got = np.empty(a.size, np.float32)
    with np.errstate(all="ignore"):
        _fma_many(a, b, c, got)
        # inf and NaN as IEEE 754 has them (float64 products of these cannot round wrongly)
        want = (a.astype(np.float64) * b + c).astype(np.float32)
    finite = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    want[finite] = [_fma_exact(*v) for v in zip(a[finite], b[finite], c[finite])]
    np.testing.assert_array_equal(got, want)  # NaN where NaN
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))


def test_pack_bayer(rng):
    m = rng.random((6, 10), dtype=np.float32)
    np.testing.assert_array_equal(pack_bayer(m), ref.pack_bayer(m))


def test_run_end_to_end_against_reference(rng):
    m = random_model(rng, scale=3)
    x = rng.random((11, 8, 3), dtype=np.float32)
    out, idx = engine.run(m, x)
    idx_ref, _ = ref.select(m, x)
    np.testing.assert_array_equal(idx, idx_ref)
    want = ref.depth_to_space(ref.apply_bank(x, idx_ref, m.bank), 3)
    assert out.shape == (33, 24, 3)
    np.testing.assert_allclose(out, want, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("shape", [(9, 14), (16, 11), (3, 40), (1, 1)])
def test_a_1x1_kernel_is_a_per_pixel_matrix_product(rng, shape):
    """A bank with mixed kernel sizes: where the selector picks the 1 x 1 kernel,
    the output is a plain per-pixel matrix product, at the borders too."""
    m = random_model(rng)
    biases = list(m.selector_biases)
    biases[-1] = biases[-1].copy()
    biases[-1][3] = 1e4  # kernel 3 (1 x 1) wins everywhere
    m = dataclasses.replace(m, selector_biases=tuple(biases))
    x = rng.random(shape + (3,), dtype=np.float32)
    out, idx = engine.run(m, x)
    assert np.all(idx == 3)
    y = out.reshape(shape[0], 2, shape[1], 2, 3).transpose(0, 2, 4, 1, 3).reshape(shape + (12,))
    want = np.einsum("oc,hwc->hwo", m.bank[3][:, :, 2, 2], x)
    np.testing.assert_allclose(y, want, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("task", ["upscale", "demosaick"])
def test_bit_identical_across_thread_counts(rng, task):
    m = random_model(rng, task=task, scale=2)
    x = rng.random((37, 29, m.in_channels), dtype=np.float32)
    most = numba.config.NUMBA_NUM_THREADS
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a, ia = engine.run(m, x)
        numba.set_num_threads(most)
        b, ib = engine.run(m, x)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(ia, ib)
    assert a.tobytes() == b.tobytes()

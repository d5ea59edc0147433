"""Numba kernels against their plain-NumPy references."""

import numba
import numpy as np
import pytest
import reference as ref
from conftest import ATOL, random_model

from pafu_cli.filters.pafu import _kernels, engine


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12])
def test_reflect_matches_numpy_pad(n):
    idx = np.arange(-3 * n - 5, 4 * n + 6)
    got = np.array([_kernels._reflect(i, n) for i in idx])
    if n == 1:
        assert np.all(got == 0)
        return
    pad = 3 * n + 5
    want = np.pad(np.arange(n), (pad, pad + 1), mode="reflect")[idx + pad]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (13, 17)])
@pytest.mark.parametrize("k,relu", [(1, False), (3, True), (5, False)])
def test_conv2d(rng, shape, k, relu):
    x = rng.random(shape + (3,), dtype=np.float32)
    w = rng.normal(0, 1, (6, 3, k, k)).astype(np.float32)
    b = rng.normal(0, 1, 6).astype(np.float32)
    out = np.empty(shape + (6,), np.float32)
    _kernels.conv2d(x, engine._hwio(w), b, relu, out)
    if min(shape) > 1:
        np.testing.assert_allclose(out, ref.conv2d(x, w, b, relu), atol=ATOL, rtol=1e-5)
    else:  # a 1x1 image: every reflected tap is the single sample
        want = np.einsum("hwc,oc->hwo", x, w.sum(axis=(2, 3))) + b
        np.testing.assert_allclose(out, np.maximum(want, 0) if relu else want, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 2), (5, 9), (16, 11)])
def test_conv2d_argmax_and_selection(rng, shape):
    m = random_model(rng)
    x = rng.random(shape + (3,), dtype=np.float32)
    idx_ref, logits = ref.select(m, x)
    idx = engine.select(m, x)
    top2 = np.sort(logits, axis=2)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-4  # ties within float error excluded
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(idx[clear], idx_ref[clear])
    assert len(np.unique(idx)) > 1  # the random selector really selects


@pytest.mark.parametrize("shape", [(1, 4), (3, 3), (9, 14)])
def test_apply_bank_mixed_sizes(rng, shape):
    m = random_model(rng)
    x = rng.random(shape + (3,), dtype=np.float32)
    idx = rng.integers(0, m.n_kernels, shape).astype(np.int32)
    out = engine.filter_selected(m, x, idx)
    if min(shape) > 1:
        np.testing.assert_allclose(out, ref.apply_bank(x, idx, m.bank), atol=ATOL, rtol=1e-5)
    # Kernel 3 is 1x1: its pixels are a plain per-pixel matrix product.
    sel = idx == 3
    assert sel.any()
    want = np.einsum("oc,pc->po", m.bank[3][:, :, 2, 2], x[sel])
    np.testing.assert_allclose(out[sel], want, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_depth_to_space(rng, s):
    y = rng.random((3, 5, 3 * s * s), dtype=np.float32)
    np.testing.assert_array_equal(engine.depth_to_space(y, s), ref.depth_to_space(y, s))


def test_pack_bayer(rng):
    m = rng.random((6, 10), dtype=np.float32)
    out = np.empty((3, 5, 4), np.float32)
    _kernels.pack_bayer(m, out)
    np.testing.assert_array_equal(out, ref.pack_bayer(m))


def test_run_end_to_end_against_reference(rng):
    m = random_model(rng, scale=3)
    x = rng.random((11, 8, 3), dtype=np.float32)
    out, idx = engine.run(m, x)
    idx_ref, _ = ref.select(m, x)
    np.testing.assert_array_equal(idx, idx_ref)
    want = ref.depth_to_space(ref.apply_bank(x, idx_ref, m.bank), 3)
    assert out.shape == (33, 24, 3)
    np.testing.assert_allclose(out, want, atol=ATOL, rtol=1e-5)


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

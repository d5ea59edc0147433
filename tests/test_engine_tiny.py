"""The banded engine serves every image size, down to 1 x 1, with the reference's
semantics: reflection padding at every selector layer and for the bank, as
``numpy.pad(mode="reflect")`` repeated when the pad exceeds the image."""

import dataclasses

import numba
import numpy as np
import pytest
import reference as ref
from conftest import random_model
from test_band import _with_selector

from pafu_cli.cfa import PATTERNS
from pafu_cli.filters.pafu import engine

SHAPES = [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2), (5, 7), (4, 17), (17, 3)]


def _check(out, idx, want, idx_ref, logits, s, mix, margin=1e-4):
    """Selections equal where the logits leave no rounding tie (with ``mix`` 2: the
    top two and their order); outputs equal to rounding there."""
    top = np.sort(logits, axis=2)
    clear = top[..., -1] - top[..., -2] > margin
    if mix == 2 and top.shape[2] > 2:
        clear &= top[..., -2] - top[..., -3] > margin
    assert clear.mean() > 0.7
    np.testing.assert_array_equal(idx[clear], idx_ref[clear])
    ok = np.repeat(np.repeat(clear, s, 0), s, 1)[: out.shape[0], : out.shape[1]]
    # mix 2: the weight comes from float32 logits, ~1e-6 relative times outputs of a few units.
    np.testing.assert_allclose(out[ok], want[ok], atol=1e-5 if mix == 1 else 1e-4, rtol=1e-5)


@pytest.mark.parametrize("mix", [1, 2])
@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_tiny_images_match_reference(rng, shape, scale, mix):
    m = dataclasses.replace(random_model(rng, scale=scale), mix=mix)
    x = rng.random(shape + (3,), dtype=np.float32)
    want, idx_ref, logits = ref.run(m, x)
    out, idx = engine.run(m, x)
    assert out.shape == (shape[0] * scale, shape[1] * scale, 3)
    _check(out, idx, want, idx_ref, logits, scale, mix)
    for band in (1, 2):  # the same bits for any band height
        o2, i2 = engine.run(m, x, band=band)
        np.testing.assert_array_equal(i2, idx)
        assert o2.tobytes() == out.tobytes()


@pytest.mark.parametrize("ks", [(5, 3), (3, 1, 3, 1), (7, 1)])
@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (3, 3), (6, 2)])
def test_tiny_images_deep_and_wide_selectors(rng, ks, shape):
    """Selector reach far beyond the image (up to 4 folds of the reflection)."""
    m = _with_selector(random_model(rng, scale=2, kernel_sizes=(7, 3, 1, 5)), ks, rng)
    m = dataclasses.replace(
        m, selector_weights=tuple(w * np.float32(0.3) for w in m.selector_weights)
    )  # moderate logits
    x = rng.random(shape + (3,), dtype=np.float32)
    want, idx_ref, logits = ref.run(m, x)
    out, idx = engine.run(m, x, band=1)
    _check(out, idx, want, idx_ref, logits, 2, 1)


@pytest.mark.parametrize("mix", [1, 2])
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 5), (5, 3), (2, 7), (7, 2), (4, 34)])
def test_tiny_mosaics_match_reference(rng, pattern, shape, mix):
    m = dataclasses.replace(random_model(rng, task="demosaick"), mix=mix)
    cfa = rng.random(shape, dtype=np.float32)
    for pad in (0, 1, 4):
        want, idx_ref, logits = ref.run_mosaic(m, cfa, pattern, pad)
        out, idx = engine.run_mosaic(m, cfa, pattern, pad)
        assert out.shape == shape + (3,)
        assert idx.shape == idx_ref.shape
        top = np.sort(logits, axis=2)
        clear = top[..., -1] - top[..., -2] > 1e-4
        if mix == 2:
            clear &= top[..., -2] - top[..., -3] > 1e-4
        np.testing.assert_array_equal(idx[clear], idx_ref[clear])
        _, (top, left) = ref.packed_mosaic(cfa, pattern, pad)
        ok = clear[(np.arange(shape[0]) + top) // 2][:, (np.arange(shape[1]) + left) // 2]
        assert ok.mean() > 0.5
        np.testing.assert_allclose(out[ok], want[ok], atol=1e-5 if mix == 1 else 1e-4, rtol=1e-5)
        o2, i2 = engine.run_mosaic(m, cfa, pattern, pad, band=1)
        np.testing.assert_array_equal(i2, idx)
        assert o2.tobytes() == out.tobytes()


def test_tiny_images_bit_identical_across_thread_counts(rng):
    m = dataclasses.replace(random_model(rng, scale=2), mix=2)
    x = rng.random((5, 7, 3), dtype=np.float32)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a, ia = engine.run(m, x, band=1)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b, ib = engine.run(m, x, band=1)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(ia, ib)
    assert a.tobytes() == b.tobytes()

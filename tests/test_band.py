"""The banded engine (pafu_cli.filters.pafu._band) against the plain-NumPy
reference: same selections (up to logit ties within rounding), same outputs to
rounding, for every band size, window and input mode; its 16-lane kernels
against NumPy. (Tiny images: tests/test_engine_tiny.py; the SIMD kernels
against their portable form: tests/test_engine_simd.py.)"""

import dataclasses

import numba
import numpy as np
import pytest
import reference as ref
from conftest import ATOL, random_model

from pafu_cli.cfa import PATTERNS, to_packed_rggb
from pafu_cli.filters.pafu import _simd, engine


def _clear(m, x, margin=1e-4):
    """Pixels whose best logit beats the second by more than ``margin``."""
    _, logits = ref.select(m, x)
    top2 = np.sort(logits, axis=2)[..., -2:]
    return (top2[..., 1] - top2[..., 0]) > margin


def _with_selector(m, ks, rng, width=6):
    """``m`` with a selector whose layers have kernel sizes ``ks`` (the last gives the logits)."""
    chans = [m.in_channels] + [width] * (len(ks) - 1) + [m.n_kernels]
    ws = tuple(
        rng.normal(0, 1.0, (chans[i + 1], chans[i], k, k)).astype(np.float32) for i, k in enumerate(ks)
    )
    bs = tuple(rng.normal(0, 1.0, chans[i + 1]).astype(np.float32) for i in range(len(ks)))
    return dataclasses.replace(m, selector_weights=ws, selector_biases=bs)


@pytest.mark.parametrize("shape", [(9, 9), (12, 40), (41, 23)])
@pytest.mark.parametrize("band", [1, 3, 16])
@pytest.mark.parametrize("ks", [(3, 3, 1), (5, 3), (1,), (3, 1, 3, 1)])
def test_banded_matches_reference(rng, shape, band, ks):
    m = _with_selector(random_model(rng, scale=3), ks, rng)
    x = rng.random(shape + (3,), dtype=np.float32)
    out, idx = engine.run(m, x, band=band)
    idx_ref, _ = ref.select(m, x)
    clear = _clear(m, x)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(idx[clear], idx_ref[clear])
    # Filtering checked with the engine's own selection (ties may go either way).
    want = ref.depth_to_space(ref.apply_bank(x, idx, m.bank), 3)
    np.testing.assert_allclose(out, want, atol=ATOL, rtol=1e-5)


def test_small_images_match_the_reference(rng):
    m = random_model(rng)
    x = rng.random((3, 30, 3), dtype=np.float32)  # 3 rows: fewer than the selector's and bank's reach
    out, idx = engine.run(m, x)
    np.testing.assert_array_equal(idx, ref.select(m, x)[0])
    np.testing.assert_allclose(
        out, ref.depth_to_space(ref.apply_bank(x, idx, m.bank), 2), atol=ATOL, rtol=1e-5
    )


def test_window_is_a_crop_of_the_full_result(rng):
    m = random_model(rng, scale=4)
    x = rng.random((20, 25, 3), dtype=np.float32)
    full, idx = engine.run(m, x)
    win, idx2 = engine.run(m, x, out_shape=(31, 50), offset=(7, 13))
    np.testing.assert_array_equal(idx, idx2)
    assert win.tobytes() == np.ascontiguousarray(full[7:38, 13:63]).tobytes()


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", [(2, 2), (7, 5), (30, 44), (45, 31)])
def test_mosaic_read_on_the_fly_matches_packed_input(rng, pattern, shape):
    m = random_model(rng, task="demosaick")
    cfa = rng.random(shape, dtype=np.float32)
    pad = 6
    packed, (top, left) = to_packed_rggb(cfa, pattern, pad)
    want, widx = engine.run(m, packed, out_shape=shape, offset=(top, left))
    got, gidx = engine.run_mosaic(m, cfa, pattern, pad)
    np.testing.assert_array_equal(gidx, widx)
    assert got.shape == shape + (3,)
    # Same engine, same inputs sample for sample: the same bits.
    assert got.tobytes() == want.tobytes()


def test_banded_bit_identical_across_thread_counts_and_bands_per_thread(rng):
    m = random_model(rng, task="demosaick")
    cfa = rng.random((203, 150), dtype=np.float32)
    most = numba.config.NUMBA_NUM_THREADS
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a, ia = engine.run_mosaic(m, cfa, "GBRG", 6)
        numba.set_num_threads(most)
        b, ib = engine.run_mosaic(m, cfa, "GBRG", 6)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(ia, ib)
    assert a.tobytes() == b.tobytes()
    c, ic = engine.run_mosaic(m, cfa, "GBRG", 6, band=5)  # other band edges: same bits
    np.testing.assert_array_equal(ia, ic)
    assert a.tobytes() == c.tobytes()


def _passthrough_model(rng):
    m = random_model(rng, task="demosaick")
    bank = m.bank.copy()
    c = (bank.shape[3] - 1) // 2
    for o, i in ((0, 0), (5, 1), (6, 2), (11, 3)):  # R, G1, G2, B keep their sample
        bank[:, o] = 0
        bank[:, o, i, c, c] = 1
    return dataclasses.replace(m, bank=bank)


def test_passthrough_outputs_are_detected_and_copied(rng):
    m = _passthrough_model(rng)
    np.testing.assert_array_equal(engine.passthrough_outputs(m), [0, -1, -1, -1, -1, 1, 2, -1, -1, -1, -1, 3])
    assert np.all(engine.passthrough_outputs(random_model(rng, task="demosaick")) == -1)
    cfa = rng.random((40, 34), dtype=np.float32)
    out, idx = engine.run_mosaic(m, cfa, "RGGB", 6)
    # Every known sample comes out unchanged ...
    np.testing.assert_array_equal(out[0::2, 0::2, 0], cfa[0::2, 0::2])
    np.testing.assert_array_equal(out[0::2, 1::2, 1], cfa[0::2, 1::2])
    np.testing.assert_array_equal(out[1::2, 0::2, 1], cfa[1::2, 0::2])
    np.testing.assert_array_equal(out[1::2, 1::2, 2], cfa[1::2, 1::2])
    # ... and the result is the model's, computed the slow way.
    packed, (top, left) = to_packed_rggb(cfa, "RGGB", 6)
    want = ref.depth_to_space(ref.apply_bank(packed, engine.run(m, packed)[1], m.bank), 2)
    np.testing.assert_allclose(out, want[top : top + 40, left : left + 34], atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("n_taps", [1, 5, 100, 147])
def test_simd_dot4x16_matches_numpy(rng, n_taps, simd):
    raw = rng.standard_normal(4000).astype(np.float32)
    off = rng.integers(0, 1000, n_taps).astype(np.int64)
    stride = 32
    wf = rng.standard_normal(n_taps * stride + 16).astype(np.float32)
    q = (0, 3, 3, 2999)  # a repeated pixel, as in a short last group
    s = (0, 16, 64, 96)
    got = np.full(128, np.nan, np.float32)
    want = np.full(128, np.nan, np.float32)
    _simd.dot4x16_array(simd, raw, off, q, wf, 16, stride, got, s)
    _simd.dot4x16_reference(raw, off, q, wf, 16, stride, want, s)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(n_taps), equal_nan=True)
    assert np.isnan(got[32:64]).all()  # nothing written outside the four result rows


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("relu", [True, False])
def test_simd_conv_matches_numpy(rng, k, relu, simd):
    ci, rows, cols, co = 5, 3, 40, 6
    src = rng.standard_normal((ci, rows, cols)).astype(np.float32)
    w = rng.standard_normal((co, ci, k, k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    dst = np.full((co, 16), np.nan, np.float32)
    outs, j0 = (0, 2, 5, 5), 7  # a repeated output, as for a layer width not a multiple of 4
    _simd.conv_4x16_array(
        simd,
        k,
        src.ravel(),
        (j0, rows * cols, cols, ci),
        w.ravel(),
        tuple(o * ci * k * k for o in outs),
        b,
        outs,
        relu,
        dst.ravel(),
        tuple(o * 16 for o in outs),
    )
    for o in set(outs):
        want = b[o] + sum(
            w[o, c, dy, dx] * src[c, dy, j0 + dx : j0 + dx + 16].astype(np.float64)
            for c in range(ci)
            for dy in range(k)
            for dx in range(k)
        )
        np.testing.assert_allclose(dst[o], np.maximum(want, 0) if relu else want, rtol=1e-5, atol=1e-5)
    assert np.isnan(dst[[1, 3, 4]]).all()


def _clear_top2(logits, margin=1e-4):
    """Pixels whose three largest logits are apart by more than ``margin`` (the top
    two and their order are then not a rounding tie)."""
    top3 = np.sort(logits, axis=2)[..., -3:]
    return ((top3[..., 2] - top3[..., 1]) > margin) & ((top3[..., 1] - top3[..., 0]) > margin)


@pytest.mark.parametrize("shape", [(12, 40), (41, 23), (9, 9)])
@pytest.mark.parametrize("ks", [(3, 3, 1), (3, 3), (1,)])
def test_banded_top2_blend_matches_reference(rng, shape, ks):
    """mix 2: the two largest logits' kernels blended by their softmax weight, on the
    fused 16-lane path (last layer 1x1, 16+ columns) and the tile path (3x3 last
    layer, or fewer than 16 columns)."""
    m = dataclasses.replace(_with_selector(random_model(rng, scale=3), ks, rng), mix=2)
    x = rng.random(shape + (3,), dtype=np.float32)
    out, idx = engine.run(m, x, band=5)
    i1, i2, wt, logits = ref.select_top2(m, x)
    clear = _clear_top2(logits)
    assert clear.mean() > 0.8
    np.testing.assert_array_equal(idx[clear], i1[clear])
    want = ref.depth_to_space(ref.apply_mixed(x, i1, i2, wt, m.bank), 3)
    ok = np.repeat(np.repeat(clear, 3, 0), 3, 1)
    # The weight comes from float32 logits: ~1e-6 relative, times kernel outputs of a few units.
    np.testing.assert_allclose(out[ok], want[ok], atol=1e-4, rtol=1e-5)
    assert 0.05 < np.mean((wt > 0.02) & (wt < 0.98))  # real blends, not one-hot ones
    argmax_out, _ = engine.run(dataclasses.replace(m, mix=1), x)
    assert np.abs(argmax_out - out).max() > 1e-2  # ... which change the output


def test_top2_blend_small_image_and_threads(rng):
    m = dataclasses.replace(random_model(rng, task="demosaick"), mix=2)
    packed = rng.random((3, 30, 4), dtype=np.float32)  # 3 rows, fewer than the selector's reach
    out, idx = engine.run(m, packed)
    i1, i2, wt, logits = ref.select_top2(m, packed)
    clear = _clear_top2(logits)
    np.testing.assert_array_equal(idx[clear], i1[clear])
    want = ref.depth_to_space(ref.apply_mixed(packed, i1, i2, wt, m.bank), 2)
    ok = np.repeat(np.repeat(clear, 2, 0), 2, 1)
    np.testing.assert_allclose(out[ok], want[ok], atol=1e-4, rtol=1e-5)
    cfa = rng.random((203, 150), dtype=np.float32)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a, _ = engine.run_mosaic(m, cfa, "BGGR", 6)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b, _ = engine.run_mosaic(m, cfa, "BGGR", 6, band=7)
    finally:
        numba.set_num_threads(old)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("w", [260, 271, 512 + 3])
def test_a_column_chunk_gets_the_bits_of_the_whole_image(rng, w):
    """A row whose width is a few columns more than a multiple of the tile (256)
    ends in a narrow tile; its columns are computed by the same 16-lane kernels
    as in a narrower chunk of the image (which the Dask path cuts): equal bits,
    not only equal to rounding."""
    m = dataclasses.replace(random_model(rng, scale=2), mix=2)
    x = rng.random((20, w, 3), dtype=np.float32)
    whole, _ = engine.run(m, x)
    c0 = (w - 40) // 16 * 16  # a chunk starting on a multiple of 16, as the Dask path cuts them
    part, _ = engine.run(m, np.ascontiguousarray(x[:, c0:]))
    reach = 4  # the random model's receptive margin
    np.testing.assert_array_equal(part[:, 2 * reach :], whole[:, 2 * (c0 + reach) :])

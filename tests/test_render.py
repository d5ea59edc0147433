import numpy as np
import pytest

from pafu_cli.models.choice import (
    NOISE_PERCENTILE,
    NOISE_TILE,
    NOISE_TILE_BIAS,
    mosaic_colourfulness,
    noise_level,
    residual_tile_sd,
)
from pafu_cli.raw.render import (
    XYZ_FROM_SRGB,
    apply_matrix,
    auto_white,
    camera_to_srgb,
    colour_index,
    gamma_curve,
    grey_world,
    histogram,
    libraw_border,
    orient,
    quantise,
    scale_mosaic,
    wb_scale,
    white_point,
)


@pytest.mark.parametrize(
    "pattern,tile",
    [
        ("RGGB", [[0, 1], [3, 2]]),
        ("BGGR", [[2, 3], [1, 0]]),
        ("GRBG", [[1, 0], [2, 3]]),
        ("GBRG", [[3, 2], [0, 1]]),
    ],
)
def test_colour_index_matches_libraw(pattern, tile):
    assert colour_index(pattern).tolist() == tile


def test_white_point_adjusts_to_data_max():
    cfa = np.full((4, 4), 100, np.uint16)
    cfa[0, 0] = 900  # data max after black = 800, 80% of 1000 -> adopted
    assert white_point(cfa, "RGGB", [100] * 4, 1100) == 800
    cfa[0, 0] = 500  # 40%: keep the white level
    assert white_point(cfa, "RGGB", [100] * 4, 1100) == 1000


def test_wb_scale_normalises_to_min_and_fills_g2():
    s = wb_scale([2.0, 1.0, 1.5, 0.0], 1000.0)
    np.testing.assert_allclose(s, np.array([2.0, 1.0, 1.5, 1.0]) * 65.535, rtol=1e-6)


def test_scale_mosaic_truncates_and_clips():
    cfa = np.array([[110, 1000], [50, 105]], np.uint16)
    v = scale_mosaic(cfa, "RGGB", [100, 100, 100, 100], [2.5, 100.0, 3.3, 1.0])
    assert v.tolist() == [[25.0, 65535.0], [0.0, 16.0]]


def test_grey_world_skips_saturated_blocks():
    cfa = np.zeros((16, 8), np.uint16)
    cfa[0:8:2, 0::2] = 200  # R
    cfa[0:8:2, 1::2] = 100  # G
    cfa[1:8:2, 0::2] = 100  # G2
    cfa[1:8:2, 1::2] = 50  # B
    cfa[8:, :] = 5000  # a clipped block: ignored
    mul = grey_world(cfa, "RGGB", [0] * 4, maximum=4000)
    np.testing.assert_allclose(mul, [1 / 200, 1 / 100, 1 / 50, 1 / 100], rtol=1e-6)


def test_libraw_border_is_floored_same_colour_mean():
    cfa = np.arange(16, dtype=np.uint16).reshape(4, 4) * 10
    ys, xs, rgb = libraw_border(cfa, "RGGB", [0] * 4, [1.0] * 4)
    k = int(np.nonzero((ys == 0) & (xs == 0))[0][0])
    # R measured 0; G = mean(10, 40) = 25; B = 50.
    assert rgb[k].tolist() == [0.0, 25.0, 50.0]
    assert ys.size == 12


def test_apply_matrix_truncates_and_clips():
    rgb = np.array([[[100.0, 200.0, 300.0]]], np.float32)
    m = np.array([[1.5, 0, 0], [0, -1, 0], [0, 0, 300]], np.float32)
    assert apply_matrix(rgb, m).tolist() == [[[150, 0, 65535]]]


def test_camera_matrix_choice():
    cm = np.eye(3, 4, dtype=np.float32) * 2
    np.testing.assert_array_equal(camera_to_srgb(cm, np.zeros((4, 3)), True, False), cm[:, :3])
    assert camera_to_srgb(np.zeros((3, 4)), np.zeros((4, 3)), False, False) is None
    xyz = np.vstack([np.linalg.inv(XYZ_FROM_SRGB), np.zeros((1, 3))])
    np.testing.assert_allclose(camera_to_srgb(np.zeros((3, 4)), xyz, False, False), np.eye(3), atol=1e-5)


def test_gamma_curve_srgb_and_linear():
    lin = gamma_curve((1.0, 1.0), 65536)
    assert lin[1000] == 1000 and lin[65535] == 65535
    c = gamma_curve((2.4, 12.92), 65536)
    assert abs(c[32768] / 65536 - (1.055 * 0.5 ** (1 / 2.4) - 0.055)) < 2e-4
    assert c[10] == int(65536 * 12.92 * 10 / 65536)
    half = gamma_curve((1.0, 1.0), 32768)
    assert half[16384] == 32768 and half[40000] == 65535


def test_auto_white_finds_one_percent():
    hist = np.zeros((3, 0x2000), np.int64)
    hist[:, 100] = 990
    hist[:, 5000] = 10
    hist[1, 6000] = 11  # channel 1 has > 1% above 6000
    assert auto_white(hist, 1000) == 6000 << 3


@pytest.mark.parametrize(
    "flip,expect",
    [
        (0, [[1, 2, 3], [4, 5, 6]]),
        (3, [[6, 5, 4], [3, 2, 1]]),
        (5, [[3, 6], [2, 5], [1, 4]]),
        (6, [[4, 1], [5, 2], [6, 3]]),
    ],
)
def test_orient(flip, expect):
    assert orient(np.array([[1, 2, 3], [4, 5, 6]]), flip).tolist() == expect


def test_noise_level_grows_with_noise(rng):
    clean = np.full((64, 64), 0.5, np.float32)
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    assert noise_level(clean) == 0.0
    assert 0.05 < noise_level(noisy) < 0.2


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_noise_level_reads_the_sigma_of_noise_on_a_smooth_field(rng, sigma):
    # A ramp (cancelled by the Laplacian filter) plus Gaussian noise: the estimate
    # times the mosaic's bright end (its 99th percentile) is the noise's sigma.
    ramp = np.linspace(0.1, 0.9, 512, dtype=np.float32)[None, :].repeat(512, 0)
    noisy = ramp + rng.normal(0, sigma, ramp.shape).astype(np.float32)
    ref = np.percentile(noisy[::4, ::4], 99)
    assert noise_level(noisy) * ref == pytest.approx(sigma, rel=0.03)


def test_noise_level_tile_bias_is_the_percentile_of_pure_noise(rng):
    # NOISE_TILE_BIAS: the NOISE_PERCENTILE-th percentile of the residual's tile
    # standard deviations for unit noise, re-measured here.
    vals = []
    for _ in range(8):
        sd, _ = residual_tile_sd(rng.normal(0, 1, (482, 482)), NOISE_TILE)
        vals.append(np.percentile(sd, NOISE_PERCENTILE))
    assert np.mean(vals) == pytest.approx(NOISE_TILE_BIAS, abs=0.01)


def test_noise_level_finds_the_flat_spots_of_a_textured_picture(rng):
    # Strong fine texture (several times the noise) everywhere but in flat patches (a
    # quarter of the area): the low percentile of small tiles reads the noise there,
    # not the texture (about 1.2 sigma: fewer flat tiles than in a flat field).
    h = w = 384
    texture = 0.5 + 0.2 * np.sin(np.arange(w)[None, :] * 1.3 + np.arange(h)[:, None] * 0.7)
    texture = texture + 0.1 * rng.standard_normal((h // 8, w // 8)).repeat(8, 0).repeat(8, 1)
    for y in range(0, h, 96):
        for x in range(0, w, 96):
            texture[y : y + 48, x : x + 48] = 0.5
    sigma = 0.02
    noisy = (texture + rng.normal(0, sigma, (h, w))).astype(np.float32)
    ref = np.percentile(noisy[::4, ::4], 99)
    assert noise_level(noisy) * ref == pytest.approx(sigma, rel=0.3)


def test_mosaic_colourfulness(rng):
    from pafu_cli.cfa import mosaic

    grey = mosaic(np.full((16, 16, 3), 0.5, np.float32), "RGGB")
    assert mosaic_colourfulness(grey, "RGGB") == 0.0
    pink = mosaic(np.broadcast_to(np.float32([0.8, 0.4, 0.4]), (16, 16, 3)).copy(), "GBRG")
    assert mosaic_colourfulness(pink, "GBRG") == pytest.approx(0.5)
    # Linear values: the min/max ratio is gamma-encoded first (0.5 ** (1 / 2.2)).
    assert mosaic_colourfulness(pink, "GBRG", linear=True) == pytest.approx(1 - 0.5 ** (1 / 2.2))
    # Dark (below 0.02) and clipped (>= 0.98) quads are left out.
    im = rng.uniform(0.1, 0.9, (32, 32, 3)).astype(np.float32)
    ref = mosaic_colourfulness(mosaic(im, "RGGB"), "RGGB")
    im[:8] = [0.01, 0.0, 0.0]
    im[8:16] = [1.0, 0.0, 0.0]
    assert mosaic_colourfulness(mosaic(im, "RGGB"), "RGGB") == pytest.approx(
        mosaic_colourfulness(mosaic(im[16:], "RGGB"), "RGGB")
    )
    assert 0.3 < ref < 0.9
    # A linear mosaic scores (about) as its gamma-encoded version does, at any exposure.
    lin = mosaic(im[16:] ** 2.2 * 0.1, "RGGB")
    assert mosaic_colourfulness(lin, "RGGB", linear=True) == pytest.approx(
        mosaic_colourfulness(mosaic(im[16:], "RGGB"), "RGGB"), rel=0.02
    )  # greens averaged before/after gamma


def test_render_kernels_match_numpy(rng):
    """The fused Numba steps of the RAW rendering equal the NumPy definitions bit for bit."""
    from pafu_cli.raw import _kernels as rk

    rgb = rng.normal(0.4, 0.35, (37, 29, 3)).astype(np.float32)  # includes < 0 and > 1
    rgb[0, 0] = [0.5 / 65535, 1.5 / 65535, 65534.97 / 65535]  # rounding edges
    m = np.array([[1.6, -0.4, -0.2], [-0.15, 1.4, -0.25], [0.05, -0.5, 1.45]], np.float32)
    q = quantise(np.multiply(rgb, np.float32(65535), dtype=np.float32))
    for matrix in (m, None):
        out = np.empty(rgb.shape, np.uint16)
        rk.to_rgb16(rgb, m if matrix is not None else np.eye(3, dtype=np.float32), matrix is not None, out)
        np.testing.assert_array_equal(out, apply_matrix(q, matrix))
        # The band-by-band form with the histogram counted on the way (bands of 10 rows).
        banded = np.zeros_like(out)
        parts = np.zeros((4, 3, 0x2000), np.int64)
        for r0 in range(0, rgb.shape[0], 10):
            rk.to_rgb16_counting(
                rgb[r0 : r0 + 10],
                m if matrix is not None else np.eye(3, dtype=np.float32),
                matrix is not None,
                banded[r0 : r0 + 10],
                parts,
            )
        np.testing.assert_array_equal(banded, out)
        np.testing.assert_array_equal(parts.sum(0), histogram(out))
    rgb16 = rng.integers(0, 65536, (41, 23, 3)).astype(np.uint16)
    np.testing.assert_array_equal(rk.histogram(rgb16), histogram(rgb16))
    black = np.array([512.5, 500.0, 498.25, 530.0])
    scale = np.array([2.1, 1.0, 1.37, 1.9])
    for pattern, row0 in (("RGGB", 0), ("GBRG", 1)):
        cfa = rng.integers(0, 16384, (17, 12)).astype(np.uint16)
        want = scale_mosaic(cfa, pattern, black, scale, row0) * np.float32(1 / 65535)
        got = np.empty(cfa.shape, np.float32)
        rk.scale_mosaic01(
            cfa, colour_index(pattern).astype(np.int64), black.astype(np.float32), scale, row0, got
        )
        np.testing.assert_array_equal(got, want)
    lut = rng.integers(0, 256, 65536).astype(np.uint8)
    for flip in range(8):
        want = orient(lut[rgb16], flip)
        out = np.empty(want.shape, np.uint8)
        rk.curve_oriented_rows(rgb16, lut, flip, 0, out)  # the whole image at once
        np.testing.assert_array_equal(out, want)
        strips = np.full(want.shape, 7, np.uint8)
        for r0 in range(0, want.shape[0], 10):  # the streamed form, strip by strip
            rk.curve_oriented_rows(rgb16, lut, flip, r0, strips[r0 : r0 + 10])
        np.testing.assert_array_equal(strips, want)

"""The quality metrics and test protocols, on tiny arrays whose scores are worked
out by hand here: CPSNR and its 10-pixel border (Tanaka's ``imcpsnr``), Y-PSNR
and its shave, ``to_uint8`` rounding, the BT.601 luma constants, and the borders,
shaves, noise and crops that ``evaluation.protocols`` applies. (MATLAB
``imresize`` has its own tests in test_resize.py.)"""

import math

import imageio.v3 as iio
import numpy as np
import pytest

import pafu_cli
from pafu_cli.cfa import mosaic
from pafu_cli.evaluation import protocols
from pafu_cli.evaluation.metrics import cpsnr, psnr, rgb_to_y, to_uint8, y_psnr
from pafu_cli.evaluation.resize import imresize


def _db(mse, peak=255.0):
    return 10 * math.log10(peak * peak / mse)


# --- psnr, cpsnr ------------------------------------------------------------------------------


def test_psnr_by_hand():
    a = np.zeros((2, 2), np.uint8)
    b = a.copy()
    assert psnr(a, b) == float("inf")
    b[0, 0] = 10  # MSE 100 / 4 = 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    assert psnr(a, b, peak=1.0) == pytest.approx(10 * math.log10(1 / 25), abs=1e-12)
    assert psnr(b, a) == psnr(a, b)  # no uint8 wrap-around: 0 - 10 is -10, not 246


def _pair(y, x, c=0, d=10):
    """24 x 24 uint8 RGB images equal but for one sample, which differs by d."""
    gt = np.full((24, 24, 3), 100, np.uint8)
    out = gt.copy()
    out[y, x, c] += d
    return out, gt


def test_cpsnr_whole_image_by_hand():
    out, gt = _pair(0, 0, d=10)
    # border 0: one error of 10 among 24 * 24 * 3 samples
    assert cpsnr(out, gt, 0) == pytest.approx(_db(100 / (24 * 24 * 3)), abs=1e-12)


@pytest.mark.parametrize("c", [0, 1, 2])
def test_cpsnr_border_10_keeps_rows_and_columns_9_to_13(c):
    """MATLAB ``X(b:end-b, b:end-b)`` with b = 10 on 24 rows: 1-based rows 10..14,
    0-based 9..13, 5 rows and 5 columns (9 dropped at the top/left, 10 at the
    bottom/right); the mean runs over 5 * 5 * 3 samples."""
    inside = _db(36 / 75)
    for y, x in [(9, 9), (13, 13), (9, 13), (13, 9), (11, 12)]:
        out, gt = _pair(y, x, c, d=6)
        assert cpsnr(out, gt) == pytest.approx(inside, abs=1e-12), (y, x)
        assert cpsnr(out, gt, 10) == cpsnr(out, gt)
    for y, x in [(8, 11), (14, 11), (11, 8), (11, 14), (0, 0), (23, 23)]:
        out, gt = _pair(y, x, c, d=6)
        assert cpsnr(out, gt) == float("inf"), (y, x)
        assert cpsnr(out, gt, 0) == pytest.approx(_db(36 / (24 * 24 * 3)), abs=1e-12)


def test_cpsnr_other_borders():
    # border 1: MATLAB X(1:end-1, 1:end-1) drops only the last row and column
    out, gt = _pair(0, 0, d=3)
    assert cpsnr(out, gt, 1) == pytest.approx(_db(9 / (23 * 23 * 3)), abs=1e-12)
    out, gt = _pair(23, 5, d=3)
    assert cpsnr(out, gt, 1) == float("inf")


def test_cpsnr_is_symmetric_and_uses_all_three_channels():
    out, gt = _pair(11, 11, 2, d=20)
    assert cpsnr(out, gt) == cpsnr(gt, out)
    two = out.copy()
    two[12, 12, 0] = gt[12, 12, 0] + 20  # two errors: twice the MSE, 3.01 dB less
    assert cpsnr(out, gt) - cpsnr(two, gt) == pytest.approx(10 * math.log10(2), abs=1e-12)


# --- to_uint8, rgb_to_y, y_psnr -----------------------------------------------------------------


def test_to_uint8_rounds_half_up_and_clips():
    x = np.array([-1.0, -1e-9, 0.0, 0.25, 0.75, 1.0, 1.0 + 1e-9, 7.0])
    assert to_uint8(x).tolist() == [0, 0, 0, 64, 191, 255, 255, 255]  # 63.75 -> 64, 191.25 -> 191
    k = np.arange(0, 255, 2)
    halves = (k + 0.5) / 255
    assert np.all(halves * 255.0 == k + 0.5)  # exact halves in float64
    assert np.array_equal(to_uint8(halves), k + 1)  # half up, not half to even (which gives k)
    halves32 = halves.astype(np.float32)
    assert np.all(halves32 * np.float32(255) == (k + 0.5).astype(np.float32))
    assert np.array_equal(to_uint8(halves32), k + 1)
    assert to_uint8(np.array([0.4 / 255, 0.6 / 255, 254.4 / 255, 254.6 / 255])).tolist() == [0, 1, 254, 255]
    assert to_uint8(np.zeros((2, 3, 3), np.float32)).dtype == np.uint8


def test_rgb_to_y_is_matlab_rgb2ycbcr():
    """BT.601 studio-swing luma of ``rgb2ycbcr`` for [0, 1] input, in 0..255:
    16 + 65.481 R + 128.553 G + 24.966 B; black 16, white 235."""
    cases = {
        (0, 0, 0): 16.0,
        (1, 1, 1): 235.0,
        (1, 0, 0): 81.481,
        (0, 1, 0): 144.553,
        (0, 0, 1): 40.966,
        (0.5, 0.25, 1.0): 16 + 65.481 / 2 + 128.553 / 4 + 24.966,
    }
    for rgb, y in cases.items():
        assert rgb_to_y(np.array(rgb, np.float64)) == pytest.approx(y, abs=1e-12), rgb
    img = np.array(list(cases), np.float64).reshape(2, 3, 3)
    np.testing.assert_allclose(rgb_to_y(img), np.array(list(cases.values())).reshape(2, 3), atol=1e-12)


def _sr_pair(y, x, c, d8, h=20, w=16):
    """hr in [0, 1] (exact k/255 values) and sr = hr with one sample moved by d8/255."""
    rng = np.random.default_rng(3)
    hr8 = rng.integers(20, 230, (h, w, 3))
    hr = hr8 / 255.0
    sr8 = hr8.copy()
    sr8[y, x, c] += d8
    return sr8 / 255.0, hr


@pytest.mark.parametrize("shave", [2, 3, 4])
def test_y_psnr_shave_by_hand(shave):
    h, w = 20, 16
    n = (h - 2 * shave) * (w - 2 * shave)
    coef = {0: 65.481, 1: 128.553, 2: 24.966}
    for c, k in coef.items():
        # one sample off by 3 levels: Y off by 3 k / 255 (0..255 units)
        for y, x in [(shave, shave), (h - shave - 1, w - shave - 1), (h // 2, w // 2)]:
            sr, hr = _sr_pair(y, x, c, 3)
            want = _db((3 * k / 255) ** 2 / n)
            assert y_psnr(sr, hr, shave) == pytest.approx(want, abs=1e-9), (c, y, x)
        for y, x in [(shave - 1, w // 2), (h - shave, w // 2), (h // 2, shave - 1), (h // 2, w - shave)]:
            sr, hr = _sr_pair(y, x, c, 3)
            assert y_psnr(sr, hr, shave) == float("inf"), (c, y, x)
    sr, hr = _sr_pair(0, 0, 0, 3)
    assert y_psnr(sr, hr, 0) == pytest.approx(_db((3 * 65.481 / 255) ** 2 / (h * w)), abs=1e-9)


def test_y_psnr_quantises_sr_but_not_hr():
    sr, hr = _sr_pair(8, 8, 1, 0)
    assert y_psnr(sr + 0.49 / 255, hr, 2) == float("inf")  # rounds back to hr's levels
    one_up = y_psnr(sr + 0.51 / 255, hr, 2)  # every sample one level up: Y up by 219/255
    assert one_up == pytest.approx(_db((219 / 255) ** 2), abs=1e-9)
    assert y_psnr(np.clip(sr + 0.51 / 255, 0, 1), hr, 2) == one_up
    # hr is not quantised: a quarter level off everywhere counts
    assert y_psnr(sr, hr + 0.25 / 255, 2) == pytest.approx(_db((219 / 255 / 4) ** 2), abs=1e-9)


def test_y_psnr_grey_scores_the_mean_of_the_channels():
    rng = np.random.default_rng(5)
    g8 = rng.integers(20, 230, (12, 12))
    hr = np.repeat(g8[..., None], 3, axis=2) / 255.0
    sr8 = np.repeat(g8[..., None], 3, axis=2)
    sr8[6, 6] += np.array([3, 0, 0])  # grey value (mean) off by one level
    sr = sr8 / 255.0
    assert y_psnr(sr, hr, 2, grey=True) == pytest.approx(_db(1 / 64), abs=1e-9)
    assert y_psnr(sr, hr, 2, grey=False) == pytest.approx(_db((3 * 65.481 / 255) ** 2 / 64), abs=1e-9)


# --- the protocols on a tiny synthetic test set -------------------------------------------------


def _picture(rng, h, w):
    y, x = np.mgrid[0:h, 0:w]
    im = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (h + w)], axis=2)
    im[h // 3 : h // 2, w // 4 : w // 2] = [250, 20, 30]
    return np.clip(im + rng.integers(-20, 21, im.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_set(tmp_path, rng):
    """A test-set folder of three PNGs (one grey, named like Set14's bridge)."""
    folder = tmp_path / "Tiny"
    folder.mkdir()
    iio.imwrite(folder / "b_colour.png", _picture(rng, 38, 45))
    iio.imwrite(folder / "a_colour.png", _picture(rng, 29, 34))
    iio.imwrite(folder / "bridge.png", _picture(rng, 31, 40)[..., 1])
    return folder


def _read(folder):
    ims = {}
    for p in sorted(folder.glob("*.png")):
        im = iio.imread(p)
        ims[p.stem] = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im
    return ims


def _cpsnr_by_hand(a8, b8, top, bottom):
    a = a8[top : a8.shape[0] - bottom, top : a8.shape[1] - bottom].astype(np.float64)
    b = b8[top : b8.shape[0] - bottom, top : b8.shape[1] - bottom].astype(np.float64)
    return _db(np.mean((a - b) ** 2))


@pytest.mark.parametrize("sigma", [0, 5])
def test_demosaick_protocol(tiny_set, sigma):
    """RGGB mosaic of the picture, noise N(0, (sigma/255)^2) seeded with 1000 sigma
    + the image's index in name order, clipped; output rounded to uint8; CPSNR with
    9 rows/columns dropped at the top/left and 10 at the bottom/right, and without."""
    got = protocols.demosaick_scores(tiny_set, "demosaick", sigma)
    assert list(got) == ["a_colour", "b_colour", "bridge"]
    for i, (name, im) in enumerate(_read(tiny_set).items()):
        cfa = mosaic(im.astype(np.float32) / 255, "RGGB")
        if sigma:
            noise = np.random.default_rng(1000 * sigma + i).normal(0, sigma / 255, cfa.shape)
            cfa = np.clip(cfa + noise, 0, 1).astype(np.float32)
        np.testing.assert_array_equal(protocols.noisy_mosaic(im, sigma, i), cfa)
        out8 = to_uint8(pafu_cli.demosaick(cfa, "RGGB", model="demosaick"))
        b10, b0 = got[name]
        assert b10 == pytest.approx(_cpsnr_by_hand(out8, im, 9, 10), abs=1e-9), name
        assert b0 == pytest.approx(_cpsnr_by_hand(out8, im, 0, 0), abs=1e-9), name
        assert b10 != pytest.approx(_cpsnr_by_hand(out8, im, 10, 10), abs=1e-6), name


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_protocol(tiny_set, scale):
    """HR cropped to a multiple of s, LR by MATLAB bicubic on uint8, Y-PSNR of the
    output rounded to uint8 with s pixels shaved; ``bridge`` on its grey value."""
    got = protocols.sr_scores(tiny_set, scale, f"upscale_x{scale}_fast")
    assert list(got) == ["a_colour", "b_colour", "bridge"]
    for name, im in _read(tiny_set).items():
        h, w = im.shape[0] // scale * scale, im.shape[1] // scale * scale
        hr8 = im[:h, :w]
        lr = imresize(hr8, 1 / scale).astype(np.float32) / 255
        sr8 = to_uint8(pafu_cli.upscale(lr, scale, model=f"upscale_x{scale}_fast")).astype(np.float64)
        hr = hr8.astype(np.float64)
        if name == "bridge":
            a, b = sr8.mean(axis=2), hr[..., 0]
        else:
            k = np.array([65.481, 128.553, 24.966]) / 255
            a, b = sr8 @ k, hr @ k  # the 16 offset cancels
        s = scale
        want = _db(np.mean((a[s:-s, s:-s] - b[s:-s, s:-s]) ** 2))
        assert got[name] == pytest.approx(want, abs=1e-9), name
        off = _db(np.mean((a[s + 1 : -s - 1, s + 1 : -s - 1] - b[s + 1 : -s - 1, s + 1 : -s - 1]) ** 2))
        assert got[name] != pytest.approx(off, abs=1e-6), name

"""MATLAB-compatible bicubic imresize, checked bit-exact against MATLAB output."""

import imageio.v3 as iio
import numpy as np
import pytest

from pafu_cli.evaluation.resize import imresize, modcrop


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bit_exact_against_set5_lr(shared_data, s):
    names = ["baby", "bird", "butterfly", "head", "woman"]
    for name in names:
        hr = modcrop(iio.imread(shared_data / "Set5" / f"{name}.png"), s)
        want = iio.imread(shared_data / "Set5_LR" / f"X{s}" / f"{name}x{s}.png")
        got = imresize(hr, 1.0 / s)
        assert got.dtype == np.uint8 and got.shape == want.shape
        assert int(np.count_nonzero(got != want)) == 0, name


def test_constant_and_upscale_sizes():
    img = np.full((10, 7, 3), 77, np.uint8)
    np.testing.assert_array_equal(imresize(img, 0.5), np.full((5, 4, 3), 77))
    up = imresize(np.eye(4), 3)
    assert up.shape == (12, 12)
    # Keys cubic interpolates: upscaling by 3 keeps the samples at the sub-pixel centres.
    np.testing.assert_allclose(up[1::3, 1::3], np.eye(4), atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale must be positive"):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        imresize(np.zeros(4), 0.5)

"""Hand-made banks run by the engine reproduce plain bilinear / nearest results."""

import numpy as np
import pytest
import reference as ref
from conftest import ATOL

from pafu_cli import demosaick, upscale
from pafu_cli.cfa import PATTERNS, mosaic
from pafu_cli.filters.pafu.analytic import (
    bilinear_demosaick_model,
    bilinear_upscale_model,
    nearest_upscale_model,
)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", [(8, 8), (9, 13), (20, 7)])
def test_bilinear_demosaick_bank_equals_bilinear(rng, pattern, shape):
    cfa = rng.random(shape).astype(np.float32)
    out = demosaick(cfa, pattern, model=bilinear_demosaick_model())
    np.testing.assert_allclose(out, ref.bilinear_demosaick(cfa, pattern), atol=ATOL)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_bilinear_demosaick_keeps_samples_and_linear_ramps(pattern):
    yy, xx = np.mgrid[0:16, 0:18].astype(np.float32)
    rgb = np.stack([0.01 * xx, 0.02 * yy + 0.1, 0.3 + 0.01 * (xx + yy)], axis=2)
    out = demosaick(mosaic(rgb, pattern), pattern, model="bilinear")
    np.testing.assert_allclose(mosaic(out, pattern), mosaic(rgb, pattern), atol=1e-6)
    # Bilinear interpolation is exact on linear ramps away from the border.
    np.testing.assert_allclose(out[2:-2, 2:-2], rgb[2:-2, 2:-2], atol=1e-5)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_nearest_upscale_bank(rng, s):
    img = rng.random((5, 7, 3)).astype(np.float32)
    out = upscale(img, s, model=nearest_upscale_model(s))
    np.testing.assert_array_equal(out, np.repeat(np.repeat(img, s, 0), s, 1))


@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("shape", [(6, 9), (11, 4)])
def test_bilinear_upscale_bank(rng, s, shape):
    img = rng.random(shape + (3,)).astype(np.float32)
    out = upscale(img, s, model=bilinear_upscale_model(s))
    np.testing.assert_allclose(out, ref.bilinear_upscale(img, s), atol=ATOL)


def test_upscale_grey_image_and_integer_input():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = upscale(img, 2, model="nearest")
    assert out.shape == (6, 8)
    np.testing.assert_allclose(out[::2, ::2], img / 255.0, atol=1e-6)

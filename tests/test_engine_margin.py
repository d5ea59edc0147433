"""The model's receptive margin (``filters.pafu.model.receptive_margin``, the one
definition) bounds what an output depends on, and the row bands of the file
jobs, built on it, reproduce the whole-image result bit for bit."""

import dataclasses

import numpy as np
import pytest
from conftest import random_model
from test_band import _with_selector

from pafu_cli import demosaick, upscale
from pafu_cli.cfa import PATTERNS
from pafu_cli.filters.pafu import engine
from pafu_cli.filters.pafu.model import receptive_margin
from pafu_cli.jobs import banding


@pytest.mark.parametrize("ks", [(3, 3, 1), (5, 3), (1,), (3, 1, 3, 1)])
@pytest.mark.parametrize("mix", [1, 2])
def test_outputs_depend_on_input_within_the_receptive_margin_only(rng, ks, mix):
    """Changing input rows from k on leaves every output of input rows below
    ``k - receptive_margin`` unchanged, to the bit (and columns alike)."""
    m = dataclasses.replace(_with_selector(random_model(rng, scale=2), ks, rng), mix=mix)
    rm = receptive_margin(m)
    x = rng.random((40, 45, 3), dtype=np.float32)
    out, idx = engine.run(m, x)
    for k in (12, 25):
        y = x.copy()
        y[k:] = rng.random(y[k:].shape, dtype=np.float32)
        o2, i2 = engine.run(m, y)
        np.testing.assert_array_equal(i2[: k - rm], idx[: k - rm])
        assert o2[: 2 * (k - rm)].tobytes() == out[: 2 * (k - rm)].tobytes()
        y = x.copy()
        y[:, k:] = rng.random(y[:, k:].shape, dtype=np.float32)
        o2, i2 = engine.run(m, y)
        np.testing.assert_array_equal(i2[:, : k - rm], idx[:, : k - rm])
        np.testing.assert_array_equal(o2[:, : 2 * (k - rm)], out[:, : 2 * (k - rm)])
        # ... and the margin is needed: the row just inside it changes.
        y = x.copy()
        y[k:] = 1 - y[k:]
        o2, _ = engine.run(m, y)
        assert not np.array_equal(o2[: 2 * (k - rm + 1)], out[: 2 * (k - rm + 1)])


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("kernel_sizes", [(5, 3, 5, 1, 3), (7, 3, 1)])
@pytest.mark.parametrize("mix", [1, 2])
def test_demosaick_bands_equal_the_whole_image(rng, monkeypatch, pattern, kernel_sizes, mix):
    m = dataclasses.replace(random_model(rng, task="demosaick", kernel_sizes=kernel_sizes), mix=mix)
    cfa = rng.random((75, 38), dtype=np.float32)
    whole, sel = demosaick(cfa, pattern, model=m, return_selection=True)
    monkeypatch.setattr(banding, "BAND_PIXELS", 16 * 38)  # 16 rows per band
    got = np.empty_like(whole)
    n = 0
    for r0, r1, rgb, _ in banding.demosaick_bands(lambda a, b: cfa[a:b], 75, 38, pattern, m, True):
        got[r0:r1] = rgb
        n += 1
    assert n == 5
    assert got.tobytes() == whole.tobytes()


@pytest.mark.parametrize("mix", [1, 2])
def test_upscale_bands_equal_the_whole_image(rng, monkeypatch, mix):
    m = dataclasses.replace(random_model(rng, scale=3, kernel_sizes=(7, 3, 1)), mix=mix)
    x = rng.random((50, 33, 3), dtype=np.float32)
    whole, sel = upscale(x, 3, model=m, return_selection=True)
    monkeypatch.setattr(banding, "BAND_PIXELS", 8 * 33 * 9)  # 8 rows per band
    out, got_sel = banding.upscale_bands(x, 3, m, True)
    assert out.tobytes() == whole.tobytes()
    np.testing.assert_array_equal(got_sel, sel)

"""Synthetic RGB-D pairs (``pafu_cli.training.depth_data``): determinism, ranges, the
two traps, the ToF-like noise and the P1 degradation, on a small photo made here
and, when ../shared is present, on one T91 photo."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from pafu_cli.io.images import write_image
from pafu_cli.training import depth_data as dd
from pafu_cli.training.data import read_rgb8


def _photo(h: int = 96, w: int = 128) -> np.ndarray:
    """A flat blue "sky" (top half), a flat green block and a black-and-white
    striped block (bottom halves), and a flat orange disc in the sky."""
    im = np.empty((h, w, 3), np.uint8)
    im[:] = (90, 140, 200)
    im[h // 2 :, : w // 2] = (60, 160, 60)
    xx = np.arange(w // 2, w)
    im[h // 2 :, w // 2 :] = np.where((xx // 2) % 2 == 0, 230, 20)[None, :, None]
    yy, xs = np.mgrid[0:h, 0:w]
    im[(yy - h // 4) ** 2 + (xs - w // 4) ** 2 < (h // 6) ** 2] = (230, 140, 40)
    return im


def _colour_step(guide: np.ndarray) -> np.ndarray:
    """|RGB difference| summed over channels between horizontal neighbours, (H, W - 1)."""
    g = guide.astype(np.int32)
    return np.abs(g[:, 1:] - g[:, :-1]).sum(axis=2)


def _flat_around(guide: np.ndarray, tol: int) -> np.ndarray:
    """(H, W - 1): the guide varies by at most ``tol`` (per channel) over the 3 x 4
    neighbourhood of each horizontal neighbour pair."""
    g = guide.astype(np.int32)
    p = np.pad(g, ((1, 1), (1, 2), (0, 0)), mode="edge")
    h, w = g.shape[:2]
    win = np.stack([p[dy : dy + h, dx : dx + w - 1] for dy in range(3) for dx in range(4)], axis=0)
    return (win.max(axis=0) - win.min(axis=0)).max(axis=2) <= tol


def _traps(guide, depth, flat_tol):
    """Pixel counts of trap (a), a strong colour edge where depth is smooth, and
    trap (b), a depth jump where the guide is flat."""
    dj = np.abs(np.diff(depth.astype(np.float64), axis=1))
    colour = _colour_step(guide)
    a = int(((colour > 150) & (dj < 1.0)).sum())
    b = int(((dj > 8) & _flat_around(guide, flat_tol)).sum())
    return a, b


def test_same_seed_same_pair_other_seed_other_pair():
    im = _photo()
    one = dd.synth_rgbd(im, np.random.default_rng(5), noise=True)
    two = dd.synth_rgbd(im, np.random.default_rng(5), noise=True)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)
    other = dd.synth_rgbd(im, np.random.default_rng(6), noise=True)
    assert not np.array_equal(one[2], other[2])
    assert not np.array_equal(one[1], other[1])
    # the clean mode draws the same clean depth as the noisy mode from the same state
    guide, depth = dd.synth_rgbd(im, np.random.default_rng(5))
    np.testing.assert_array_equal(depth, one[2])
    np.testing.assert_array_equal(guide, im)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_range_dtype_and_traps_on_a_made_photo(seed):
    im = _photo()
    guide, depth = dd.synth_rgbd(im, np.random.default_rng(seed))
    assert guide.dtype == np.uint8 and guide.shape == im.shape and guide is not im
    assert depth.dtype == np.float32 and depth.shape == im.shape[:2]
    lo, hi = dd.DEPTH_RANGE
    assert lo - 1e-3 <= depth.min() and depth.max() <= hi + 1e-3
    assert depth.max() - depth.min() >= 10  # at least one jump
    a, b = _traps(guide, depth, flat_tol=0)
    # the stripes alone give 47 colour edges per row; most lie inside one surface
    assert a >= 200, a
    # a cut through a flat area: a depth jump of more than 8 levels, no colour change at all
    assert b >= 10, b


def test_traps_on_a_t91_photo():
    im = read_rgb8(shared_path("data", "T91", "t1.png", kind="file"))
    for seed in range(3):
        guide, depth = dd.synth_rgbd(im, np.random.default_rng(seed))
        assert depth.dtype == np.float32 and depth.shape == im.shape[:2]
        assert dd.DEPTH_RANGE[0] - 1e-3 <= depth.min() and depth.max() <= dd.DEPTH_RANGE[1] + 1e-3
        a, _ = _traps(guide, depth, flat_tol=0)
        # a photo has no perfectly flat area: "flat" here is a step of < 10 (RGB summed) across the jump
        dj = np.abs(np.diff(depth, axis=1))
        b = int(((dj > 8) & (_colour_step(guide) < 10)).sum())
        assert a >= 50 and b >= 20, (seed, a, b)


def test_oversegment_follows_a_colour_edge():
    im = np.zeros((60, 90, 3), np.uint8)
    im[:, 37:] = (255, 255, 255)  # an edge off the superpixel grid
    sp = dd.oversegment(im)
    left, right = set(np.unique(sp[:, :37]).tolist()), set(np.unique(sp[:, 37:]).tolist())
    assert not left & right
    assert len(left | right) >= 9


def test_noise_grows_with_depth_on_a_ramp():
    depth = np.tile(np.linspace(20, 240, 111, dtype=np.float32), (600, 1))
    p = dd.DepthNoise(
        sigma_near=(0.5, 0.5), sigma_far=(4.0, 4.0), quant_far=(1.0, 1.0), dropout_share=(0.0, 0.0)
    )
    noisy, valid = dd.depth_noise(depth, np.random.default_rng(0), p)
    assert valid.all()  # a ramp has no depth edges, and no dropouts were asked for
    assert noisy.dtype == np.float32 and np.array_equal(noisy, np.rint(noisy))
    std = (noisy - depth).std(axis=0)
    want = p.sigma(depth[0], 0.5, 4.0)
    big = want > 1.5  # where quantisation and rounding (~0.4 levels) are small beside the noise
    np.testing.assert_allclose(std[big], want[big], rtol=0.12)
    slope = np.polyfit(depth[0], std, 1)[0]
    assert slope > 0.01, slope
    assert std[-5:].mean() > 4 * std[:5].mean()


def test_noise_grows_with_depth_on_a_flat_photo():
    # a flat photo: one surface, slanted or curved, with cuts; noise of a fixed sensor
    im = np.full((96, 128, 3), 128, np.uint8)
    p = dd.DepthNoise(sigma_near=(0.3, 0.3), sigma_far=(6.0, 6.0), quant_far=(1.0, 1.0))
    _, noisy, clean, valid = dd.synth_rgbd(im, np.random.default_rng(3), noise=p)
    near_jump = dd._max_filter(clean, 2) + dd._max_filter(-clean, 2) > 2  # local max - min
    inner = valid & ~near_jump
    res = (noisy - clean)[inner].astype(np.float64)
    d = clean[inner]
    assert np.ptp(d) > 20
    assert np.polyfit(d, res**2, 1)[0] > 0.1  # variance grows with depth
    lo, hi = d < np.percentile(d, 25), d > np.percentile(d, 75)
    assert res[hi].std() > 1.15 * res[lo].std()
    for part in (lo, hi):
        np.testing.assert_allclose(res[part].std(), p.sigma(d[part], 0.3, 6.0).mean(), rtol=0.1)


def _jumps(clean, jump=8):
    """Pixels on either side of a 4-neighbour depth jump above ``jump`` levels."""
    jumps = np.zeros(clean.shape, bool)
    dx, dy = np.abs(np.diff(clean, axis=1)) > jump, np.abs(np.diff(clean, axis=0)) > jump
    jumps[:, 1:] |= dx
    jumps[:, :-1] |= dx
    jumps[1:] |= dy
    jumps[:-1] |= dy
    return jumps


def test_holes_lie_on_the_far_side_of_depth_edges():
    depth = np.full((64, 96), 60.0, np.float32)
    depth[:, 40:] = 160.0
    depth[20:40, 10:25] = 200.0
    p = dd.DepthNoise(hole_radius=(2, 2), hole_share=(1.0, 1.0), dropout_share=(0.0, 0.0))
    noisy, valid = dd.depth_noise(depth, np.random.default_rng(1), p)
    holes = ~valid
    assert holes.sum() > 0
    assert (noisy[holes] == 0).all() and (noisy[valid] > 0).all()
    # within 2 px of a jump, on its far (larger) side
    edges = np.zeros(depth.shape, bool)
    edges[:, 1:] |= depth[:, 1:] != depth[:, :-1]
    edges[:, :-1] |= depth[:, 1:] != depth[:, :-1]
    edges[1:] |= depth[1:] != depth[:-1]
    edges[:-1] |= depth[1:] != depth[:-1]
    assert (dd._max_filter(edges, 2)[holes]).all()
    assert (depth[holes] > 60).all()  # never on the near surface
    assert holes[:, 40:42].all() and not holes[:, 42:].any()
    assert not holes[:, :40].any(axis=1)[:18].any() and not holes[:, :40].any(axis=1)[42:].any()
    # a synthetic pair's reading without dropouts: holes only near depth edges
    p = dd.DepthNoise(dropout_share=(0.0, 0.0))
    _, noisy, clean, valid = dd.synth_rgbd(_photo(), np.random.default_rng(2), noise=p)
    assert (~valid).any()
    assert dd._max_filter(_jumps(clean), 3)[~valid].all()


def test_dropouts_fall_anywhere_in_blobs_of_the_drawn_share():
    depth = np.tile(np.linspace(20, 240, 400, dtype=np.float32), (300, 1))  # no depth edges
    p = dd.DepthNoise(dropout_share=(0.03, 0.03), dropout_radius=(4.0, 4.0))
    noisy, valid = dd.depth_noise(depth, np.random.default_rng(5), p)
    holes = ~valid
    assert (noisy[holes] == 0).all() and (noisy[valid] > 0).all()
    assert 0.03 <= holes.mean() < 0.045  # blobs until the share is reached (the last one overshoots)
    rows, cols = np.nonzero(holes)
    assert np.ptp(rows) > 150 and np.ptp(cols) > 200  # spread over the map, not along edges
    # blobs, not specks: most hole pixels have all 8 neighbours in holes too
    inner = -dd._max_filter(-holes.astype(np.int8), 1) > 0
    assert inner.sum() > 0.4 * holes.sum()
    # the default reading of a synthetic pair has holes away from its depth edges too
    off_edges = 0
    for seed in range(4):
        _, _, clean, valid = dd.synth_rgbd(_photo(), np.random.default_rng(seed), noise=True)
        off_edges += int((~valid & ~dd._max_filter(_jumps(clean), 3)).sum())
    assert off_edges > 20


def test_degrade_bicubic_shapes_and_constants():
    depth = np.full((97, 130), 123.25, np.float32)
    lr, hr = dd.degrade_bicubic(depth, 4)
    assert lr.shape == (24, 32) and hr.shape == (96, 128)
    assert lr.dtype == np.float32 and hr.dtype == np.float32
    np.testing.assert_allclose(lr, 123.25, atol=1e-4)
    np.testing.assert_array_equal(hr, depth[:96, :128])
    lr, hr = dd.degrade_bicubic(np.arange(35 * 50, dtype=np.float64).reshape(35, 50), 16)
    assert lr.shape == (2, 3) and hr.shape == (32, 48)
    # a ramp stays a ramp (antialiased shrink, no re-quantisation)
    ramp = np.tile(np.arange(64, dtype=np.float32), (32, 1)) * 0.37
    lr, _ = dd.degrade_bicubic(ramp, 8)
    np.testing.assert_allclose(np.diff(lr[:, 2:-2], axis=1), 8 * 0.37, rtol=1e-3)
    with pytest.raises(ValueError):
        dd.degrade_bicubic(np.zeros((3, 40), np.float32), 4)


def test_validation_set_is_fixed(tmp_path):
    photo = _photo(64, 80)
    for i in range(10):
        write_image(tmp_path / f"p{i}.png", np.roll(photo, 7 * i, axis=1))
    three = dd.validation_set([tmp_path], n=3, seed=4, size=None)
    again = dd.validation_set([tmp_path], n=2, seed=4, size=None)
    assert len(three) == 3
    for (g1, d1), (g2, d2) in zip(three[:2], again):
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(d1, d2)
    # one validation photo (the 10th), then its flipped copies
    last = np.roll(photo, 63, axis=1)
    np.testing.assert_array_equal(three[0][0], last)
    np.testing.assert_array_equal(three[1][0], last[:, ::-1])
    cropped = dd.validation_set([tmp_path], n=1, size=(48, 64))
    assert cropped[0][0].shape == (48, 64, 3) and cropped[0][1].shape == (48, 64)
    with pytest.raises(FileNotFoundError):
        dd.validation_set([tmp_path], n=1, size=(100, 100))

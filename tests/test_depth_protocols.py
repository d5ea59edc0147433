"""The guided-upsampling evaluation protocols (``pafu_cli.evaluation.depth``) on
../shared/data/depth: the resamplers, the baselines of SOURCES.md ("Baselines
measured here") and the plumbing (a method that returns the truth scores 0).

The default run takes one image per set (a few seconds); the full tables are
marked slow. Without ../shared these tests skip (fail with PAFU_REQUIRE_SHARED=1).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from pafu_cli.evaluation import depth as D

# The "Baselines measured here" table of SOURCES.md (mean per scale).
TABLES = {
    ("bicubic", "Middlebury30"): (2.281, 3.982, 6.374),
    ("bicubic", "Lu6"): (2.418, 4.538, 7.373),
    ("bicubic", "NYU3"): (3.415, 5.638, 9.362),
    ("decimation", "NYU3"): (4.355, 6.531, 10.972),
    ("sintel", "Sintel"): (0.563, 1.138, 2.174),
    ("park", "ParkBarron"): (5.217, 5.578, 6.133, 7.221),
}
PARK_GEOMEAN = 5.938
BASELINES = {
    "bicubic": D.bicubic_method,
    "decimation": D.bilinear_method,
    "sintel": D.bilinear_method,
    "park": D.matlab_bicubic_method,
}

# One image per set, per scale. Measured with this module; baseline_bicubic.py
# (shared/data/depth) gives the same values to 4e-7. Sintel and Park-Barron: the
# per-flow / per-scene values printed in SOURCES.md (3 decimals).
ONE_IMAGE = {
    ("bicubic", "Middlebury30", "01"): ((3.296693, 6.004983, 10.464168), 1e-4),
    ("bicubic", "Lu6", "02"): ((3.553003, 6.713693, 11.189853), 1e-4),
    ("bicubic", "NYU3", "1000"): ((2.529220, 4.329939, 7.109463), 1e-4),
    ("decimation", "NYU3", "1000"): ((3.323921, 5.000365, 8.162243), 1e-4),
    ("sintel", "Sintel", "alley_1_0002"): ((0.071, 0.136, 0.249), 6e-4),
    ("park", "ParkBarron", "art"): ((5.316, 6.066, 7.271, 9.587), 6e-4),
}

# skimage.transform.resize(A, shape, order=1, mode="reflect", anti_aliasing=True,
# preserve_range=True) with scikit-image 0.26.0 (scipy 1.17.1, NumPy 2.4.6), where
# A = ((np.arange(99).reshape(9, 11) % 7) ** 2).astype(np.float64).
SK_DOWN_3x4 = [
    [13.8809567687, 11.4860897707, 12.8096235531, 14.6352596537],
    [13.3853291526, 14.2582022394, 12.7721769555, 11.3725626625],
    [11.2978145924, 11.8798780651, 14.0862482683, 14.2464836618],
]
# resize to (18, 22), then [np.ix_([0, 1, 8, 16, 17], [0, 1, 10, 20, 21])]
SK_UP_18x22 = [
    [4.75, 4.75, 17.875, 8.0625, 8.0625],
    [4.75, 4.75, 17.875, 8.0625, 8.0625],
    [10.875, 10.875, 8.6875, 17.25, 17.25],
    [13.75, 13.75, 8.125, 8.6875, 8.6875],
    [13.75, 13.75, 8.125, 8.6875, 8.6875],
]
# resize to (4, 15) (rows shrink, columns grow), then [:, [0, 1, 7, 13, 14]]
SK_MIXED_4x15 = [
    [9.4529969193, 12.0303380168, 14.9992249195, 14.9757198605, 7.1944113634],
    [16.953378545, 20.6749017463, 13.8442907725, 6.6149750184, 7.8840169777],
    [21.2609724898, 12.6753056758, 10.1874454426, 11.3965866474, 14.1211042293],
    [7.2944654498, 9.3448082019, 14.9005841512, 14.1107585906, 10.064044036],
]


@pytest.fixture
def depth_dir():
    """shared/data/depth (the guided-upsampling test sets)."""
    return shared_path("data", "depth")


def _ramp():
    return ((np.arange(99).reshape(9, 11) % 7) ** 2).astype(np.float64)


# ---------------------------------------------------------------------------
# Resamplers (no shared data)


def test_sk_resize_matches_skimage_down_by_3():
    np.testing.assert_allclose(D.sk_resize_bilinear_aa(_ramp(), 3, 4), SK_DOWN_3x4, rtol=0, atol=1e-5)


def test_sk_resize_matches_skimage_up_by_2():
    out = D.sk_resize_bilinear_aa(_ramp(), 18, 22)
    assert out.shape == (18, 22)
    np.testing.assert_allclose(out[np.ix_([0, 1, 8, 16, 17], [0, 1, 10, 20, 21])], SK_UP_18x22, atol=1e-5)


def test_sk_resize_matches_skimage_mixed():
    out = D.sk_resize_bilinear_aa(_ramp(), 4, 15)
    np.testing.assert_allclose(out[:, [0, 1, 7, 13, 14]], SK_MIXED_4x15, rtol=0, atol=1e-5)


def test_sk_resize_channels_and_dtype():
    a = np.stack([_ramp(), 2 - _ramp()], axis=2)
    out = D.sk_resize_bilinear_aa(a, 3, 4)
    assert out.shape == (3, 4, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out[..., 0], SK_DOWN_3x4, atol=1e-5)
    np.testing.assert_allclose(out[..., 1], 2 - np.array(SK_DOWN_3x4), atol=1e-5)
    assert D.sk_resize_bilinear_aa(a.astype(np.float32), 5, 5).dtype == np.float32


def test_pillow_bicubic_keeps_a_constant():
    c = np.full((37, 53), 0.37, np.float32)
    for w, h in ((13, 9), (106, 74), (53, 37)):
        out = D.pillow_bicubic(c, w, h)
        assert out.shape == (h, w) and out.dtype == np.float32
        np.testing.assert_allclose(out, 0.37, rtol=0, atol=1e-6)
    out = D.pillow_bicubic(np.dstack([c, 2 * c]), 20, 10)
    assert out.shape == (10, 20, 2)
    np.testing.assert_allclose(out[..., 1], 0.74, rtol=0, atol=1e-6)


def test_bilinear_method_is_torch_bilinear():
    a = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    out = D.bilinear_method(a, None, (4, 4))
    np.testing.assert_allclose(out[0], [0, 0.25, 0.75, 1], atol=1e-7)
    np.testing.assert_allclose(out[:, 0], [0, 0.5, 1.5, 2], atol=1e-7)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(1).normal(size=(7, 10, 2)).astype(np.float32)
    for shape in ((28, 40), (21, 13), (5, 30)):
        want = F.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=shape, mode="bilinear")
        want = want[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(D.bilinear_method(x, None, shape), want, rtol=0, atol=1e-5)


def test_matlab_bicubic_keeps_constants_and_ramps():
    out = D.matlab_bicubic_method(np.full((5, 6), 7.0, np.float32), None, (20, 24))
    np.testing.assert_allclose(out, 7.0, atol=1e-12)
    ramp = np.add.outer(np.arange(8.0), 2 * np.arange(9.0))
    out = D.matlab_bicubic_method(ramp, None, (32, 36))
    y, x = (np.arange(32) + 0.5) / 4 - 0.5, (np.arange(36) + 0.5) / 4 - 0.5
    # Keys' cubic reproduces linear functions where no tap is replicated
    np.testing.assert_allclose(out[6:-6, 6:-6], np.add.outer(y, 2 * x)[6:-6, 6:-6], atol=1e-12)
    with pytest.raises(ValueError):
        D.matlab_bicubic_method(ramp, None, (4, 36))


def test_protocol_tables():
    assert set(D.SCALES) == set(D.PROTOCOLS)
    assert D.sets_for("bicubic") == ("Middlebury30", "Lu6", "NYU3")
    assert D.sets_for("decimation") == ("NYU3",)
    assert D.sets_for("park") == ("ParkBarron",)
    assert D.sets_for("sintel") == ("Sintel",)
    with pytest.raises(ValueError, match="unknown protocol"):
        D.sets_for("nearest")


# ---------------------------------------------------------------------------
# Baselines on one image per set


@pytest.mark.parametrize("key", list(ONE_IMAGE), ids=lambda k: "-".join(k))
def test_baseline_one_image(depth_dir, key):
    protocol, set_name, image_id = key
    want, tol = ONE_IMAGE[key]
    r = D.evaluate(BASELINES[protocol], depth_dir, protocol, sets=[set_name], ids=[image_id])
    got = r["sets"][set_name]["per_image"][image_id]
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert r["sets"][set_name]["mean"] == pytest.approx(got)


# ---------------------------------------------------------------------------
# Plumbing: a method that returns the truth (read from a closure) scores ~0


def _key(guide):
    """Identifies an image by the top-left 16x16 of its guide (the same after any crop)."""
    return guide[:16, :16].tobytes()


def _rgb(path):
    return np.array(Image.open(path).convert("RGB"))


def _cheat(truths, normalise):
    """A method that looks up the truth of the image it is given and returns
    ``normalise(truth, lowres, out_shape)``."""

    def method(lowres, guide, out_shape):
        return normalise(truths[_key(guide)], lowres, out_shape)

    return method


def test_truth_scores_zero_bicubic(depth_dir):
    def normalise(d, lowres, out_shape):
        d = d[: out_shape[0], : out_shape[1]]
        return (d - d.min()) / (d.max() - d.min())  # P1 normalises with the HR min / max

    picks = {"Middlebury30": "07", "Lu6": "03", "NYU3": "1002"}
    truths = {}
    for set_name, i in picks.items():
        folder = depth_dir / set_name
        if set_name == "NYU3":
            d = np.load(folder / f"{i}_depth.npz", allow_pickle=False)["depth"]
            truths[_key(_rgb(folder / f"{i}_rgb.jpg"))] = d.astype(np.float64)
        else:
            d = np.array(Image.open(folder / f"{i}_depth.png"))
            truths[_key(_rgb(folder / f"{i}_rgb.png"))] = d.astype(np.float64)
    method = _cheat(truths, normalise)
    for set_name, i in picks.items():
        r = D.evaluate(method, depth_dir, "bicubic", sets=[set_name], ids=[i])
        np.testing.assert_allclose(r["sets"][set_name]["per_image"][i], 0, atol=1e-4)


def test_truth_scores_zero_decimation(depth_dir):
    def normalise(t, lowres, out_shape):
        s = out_shape[0] // lowres.shape[0]
        lr = t[(s - 1) // 2 :: s, (s - 1) // 2 :: s]  # P2 normalises with the LR min / max
        return (t - lr.min()) / (lr.max() - lr.min())

    folder = depth_dir / "NYU3"
    t = np.load(folder / "1001_depth.npz", allow_pickle=False)["depth"].astype(np.float64)
    method = _cheat({_key(_rgb(folder / "1001_rgb.jpg")): t}, normalise)
    r = D.evaluate(method, depth_dir, "decimation", ids=["1001"])
    np.testing.assert_allclose(r["sets"]["NYU3"]["per_image"]["1001"], 0, atol=1e-4)  # cm


def test_truth_scores_zero_sintel(depth_dir):
    def normalise(flow, lowres, out_shape):
        lr = D.sk_resize_bilinear_aa(flow, *lowres.shape[:2])  # per-channel LR min / max
        lo, hi = lr.min(axis=(0, 1)), lr.max(axis=(0, 1))
        return (flow - lo) / (hi - lo)

    folder = depth_dir / "Sintel"
    flow = np.load(folder / "bandage_1_0035_flow.npz", allow_pickle=False)["flow"].astype(np.float64)
    method = _cheat({_key(_rgb(folder / "bandage_1_0035_rgb.png")): flow}, normalise)
    # x4 only: 436 = 4 * 109, so no resize to a multiple of s blurs the truth.
    r = D.evaluate(method, depth_dir, "sintel", scales=[4], ids=["bandage_1_0035"])
    assert r["sets"]["Sintel"]["per_image"]["bandage_1_0035"][0] < 1e-5  # px


@pytest.mark.parametrize("offset", [0.0, 1.75])
def test_truth_plus_constant_scores_the_constant_park(depth_dir, offset):
    folder = depth_dir / "ParkBarron"
    truths = {}
    for scene in ("art", "books", "moebius"):
        d = np.array(Image.open(folder / f"{scene}_depth.png")).astype(np.float64)
        truths[_key(_rgb(folder / f"{scene}_rgb.png"))] = d
    seen = []
    r = D.evaluate(_cheat(truths, lambda d, lr, shape: d + offset), depth_dir, "park", progress=seen.append)
    table = np.array(list(r["sets"]["ParkBarron"]["per_image"].values()))
    assert table.shape == (3, 4)
    np.testing.assert_allclose(table, offset, rtol=1e-12, atol=1e-12)
    assert r["geomean"] == pytest.approx(offset, abs=1e-12)
    assert r["unit"] == "levels" and len(seen) == 3


def test_method_of_the_wrong_shape_is_refused(depth_dir):
    with pytest.raises(ValueError, match="shape"):
        D.evaluate(lambda lr, g, shape: lr, depth_dir, "decimation", scales=[16], ids=["1000"])
    with pytest.raises(ValueError, match="scales"):
        D.evaluate(D.bilinear_method, depth_dir, "decimation", scales=[2])
    with pytest.raises(ValueError, match="sets"):
        D.evaluate(D.bilinear_method, depth_dir, "decimation", sets=["Lu6"])


# ---------------------------------------------------------------------------
# The full tables of SOURCES.md


@pytest.mark.slow
@pytest.mark.parametrize("protocol", D.PROTOCOLS)
def test_baseline_tables(depth_dir, protocol):
    r = D.evaluate(BASELINES[protocol], depth_dir, protocol)
    assert set(r["sets"]) == set(D.sets_for(protocol))
    for set_name, entry in r["sets"].items():
        assert entry["scales"] == list(D.SCALES[protocol])
        np.testing.assert_allclose(entry["mean"], TABLES[protocol, set_name], rtol=0, atol=0.005)
    if protocol == "park":
        assert r["geomean"] == pytest.approx(PARK_GEOMEAN, abs=0.005)

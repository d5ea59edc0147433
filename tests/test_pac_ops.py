"""PAC operators against the float64 per-pixel oracle (tests/pac_reference.py),
PyTorch's convolutions, the adjoint identity, shift-free reproduction of constants
and ramps, and thread invariance."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pac_reference as R
import pytest

from pafu_cli import pac
from pafu_cli.filters.pac import resample

H, W = 7, 9  # odd, non-square: borders on every side, no symmetry to hide a transpose


def _rng(seed=0):
    return np.random.default_rng(seed)


def _data(seed=0, cin=4, cg=3):
    rng = _rng(seed)
    x = rng.normal(size=(H, W, cin)).astype(np.float32)
    f = rng.normal(size=(H, W, cg)).astype(np.float32)
    m = (rng.random((H, W)) > 0.3).astype(np.float32) * rng.uniform(0.5, 1.5, (H, W)).astype(np.float32)
    return x, f, m


FORWARD_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=3, padding=0),
    dict(dilation=2),
    dict(dilation=2, stride=2, padding=1),
    dict(normalize=True),
    dict(normalize=True, mask="m"),
    dict(mask="m"),
    dict(stride=2, normalize=True, mask="m"),
    dict(kernel="inv", inv_alpha=0.2, inv_lambda=-1.0),
    dict(kernel="inv", inv_alpha=0.0, inv_lambda=-2.0, normalize=True),
    dict(asymmetric=True),
    dict(asymmetric=True, normalize=True, stride=2),
]


def _oracle_options(opts, m):
    o = dict(opts)
    if o.get("mask") == "m":
        o["mask"] = m
    o["alpha"] = o.pop("inv_alpha", 0.0)
    o["lam"] = o.pop("inv_lambda", -1.0)
    return o


def _api_options(opts, m):
    o = dict(opts)
    if o.get("mask") == "m":
        o["mask"] = m
    return o


@pytest.mark.parametrize(
    "opts", FORWARD_CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain"
)
@pytest.mark.parametrize("k,groups", [(3, 1), (5, 2), (1, 4)])
def test_conv2d_matches_oracle(opts, k, groups):
    x, f, m = _data(k)
    rng = _rng(10 + k)
    w = rng.normal(size=(4, 4 // groups, k, k)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    if (
        opts.get("dilation", 1) * (k - 1) + 1 > H
        or opts.get("padding", 0) > opts.get("dilation", 1) * (k - 1) // 2
    ):
        pytest.skip("kernel larger than the image, or padding beyond the window's centre")
    got = pac.pac_conv2d(x, f, w, b, groups=groups, **_api_options(opts, m))
    want, want_mask = R.conv2d(x, f, w, b, groups=groups, **_oracle_options(opts, m))
    if "mask" in opts:
        got, got_mask = got
        np.testing.assert_array_equal(got_mask, want_mask)
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * scale)


@pytest.mark.parametrize("opts", FORWARD_CASES[:9], ids=lambda o: ",".join(o) or "plain")
def test_pool2d_matches_oracle(opts):
    x, f, m = _data(3)
    got = pac.pac_pool2d(x, f, 3, **_api_options(opts, m))
    eye = np.ones((4, 1, 3, 3), np.float32)  # depthwise ones = pooling
    want, want_mask = R.conv2d(x, f, eye, groups=4, **_oracle_options(opts, m))
    if "mask" in opts:
        got, got_mask = got
        np.testing.assert_array_equal(got_mask, want_mask)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


TRANSPOSED_CASES = [
    dict(stride=2, k=4),
    dict(stride=2, k=4, normalize=True),
    dict(stride=2, k=4, normalize=True, mask="m"),
    dict(stride=3, k=3),
    dict(stride=3, k=5, mask="m"),
    dict(stride=2, k=3, padding=1, output_padding=1),
    dict(stride=2, k=3, dilation=2, padding=2),
    dict(stride=4, k=8, kernel="inv", inv_alpha=0.1, inv_lambda=-1.0),
    dict(stride=2, k=6, asymmetric=True, normalize=True),
]


@pytest.mark.parametrize("opts", TRANSPOSED_CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose2d_matches_oracle(opts, groups):
    opts = dict(opts)
    s, k = opts.pop("stride"), opts.pop("k")
    rng = _rng(s * 10 + k)
    h, w = 4, 5
    x = rng.normal(size=(h, w, 4)).astype(np.float32)
    weight = rng.normal(size=(4, 6 // groups, k, k)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    m = (rng.random((h, w)) > 0.3).astype(np.float32)
    d = opts.get("dilation", 1)
    p = opts.get("padding", (d * (k - 1) + 1 - s) // 2)
    op = opts.get("output_padding", 0)
    ho = (h - 1) * s - 2 * p + d * (k - 1) + op + 1
    wo = (w - 1) * s - 2 * p + d * (k - 1) + op + 1
    f = rng.normal(size=(ho, wo, 3)).astype(np.float32)
    g = rng.normal(size=(h, w, 3)).astype(np.float32)
    got = pac.pac_conv_transpose2d(
        x, f, weight, b, stride=s, groups=groups, sample_guide=g, **_api_options(opts, m)
    )
    o = _oracle_options(opts, m)
    o["padding"] = p
    want, want_mask = R.conv_transpose2d(x, f, g, weight, b, stride=s, groups=groups, **o)
    if "mask" in opts:
        got, got_mask = got
        np.testing.assert_array_equal(got_mask, want_mask)
    assert got.shape == want.shape == (ho, wo, 6)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * scale)


def test_default_sample_guide_is_the_footprint_mean():
    rng = _rng(4)
    x = rng.normal(size=(3, 4, 1)).astype(np.float32)
    f = rng.normal(size=(6, 8, 2)).astype(np.float32)
    w = rng.normal(size=(1, 1, 4, 4)).astype(np.float32)
    g = f.reshape(3, 2, 4, 2, 2).mean(axis=(1, 3))
    got = pac.pac_conv_transpose2d(x, f, w, stride=2)
    want, _ = R.conv_transpose2d(x, f, g, w, stride=2, padding=1)
    np.testing.assert_allclose(got, want, atol=2e-6)


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize(
    "s,k,d,p,op,groups", [(2, 4, 1, 1, 0, 1), (3, 3, 1, 0, 0, 2), (2, 5, 1, 2, 1, 1), (4, 3, 2, 1, 1, 2)]
)
def test_transposed_with_k_equal_1_is_conv_transpose2d(s, k, d, p, op, groups):
    """K = 1 (a guide that is the same everywhere) gives PyTorch's conv_transpose2d,
    kernel orientation included (the reference code's version needs a flip)."""
    rng = _rng(s + k)
    x = rng.normal(size=(5, 6, 4)).astype(np.float32)
    w = rng.normal(size=(4, 6 // groups, k, k)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    torch = _torch()
    want = (
        torch.nn.functional.conv_transpose2d(
            torch.from_numpy(x.transpose(2, 0, 1)[None]),
            torch.from_numpy(w),
            torch.from_numpy(b),
            stride=s,
            padding=p,
            output_padding=op,
            groups=groups,
            dilation=d,
        )[0]
        .numpy()
        .transpose(1, 2, 0)
    )
    flat = np.zeros(want.shape[:2] + (2,), np.float32)
    got = pac.pac_conv_transpose2d(
        x, flat, w, b, stride=s, padding=p, output_padding=op, groups=groups, dilation=d
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("s,d,p,groups", [(1, 1, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1), (2, 2, 0, 4)])
def test_conv2d_with_k_equal_1_is_conv2d(s, d, p, groups):
    rng = _rng(s * 7 + d)
    x = rng.normal(size=(H, W, 4)).astype(np.float32)
    w = rng.normal(size=(8, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    torch = _torch()
    want = (
        torch.nn.functional.conv2d(
            torch.from_numpy(x.transpose(2, 0, 1)[None]),
            torch.from_numpy(w),
            torch.from_numpy(b),
            stride=s,
            padding=p,
            dilation=d,
            groups=groups,
        )[0]
        .numpy()
        .transpose(1, 2, 0)
    )
    got = pac.pac_conv2d(
        x, np.zeros((H, W, 1), np.float32), w, b, stride=s, padding=p, dilation=d, groups=groups
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "opts",
    [
        dict(),
        dict(stride=2),
        dict(dilation=2, padding=1),
        dict(normalize=True, mask="m"),
        dict(stride=2, normalize=True),
        dict(kernel="inv", inv_alpha=0.3, inv_lambda=-1.0, asymmetric=True),
        dict(groups=2, stride=3, padding=0),
    ],
    ids=lambda o: ",".join(o) or "plain",
)
def test_adjoint_identity(opts):
    """<A x, y> = <x, A^T y> for random x, y, and A^T equals the transpose of the
    oracle's matrix."""
    x, f, m = _data(5)
    o = _api_options(opts, m)
    groups = o.pop("groups", 1)
    rng = _rng(6)
    w = rng.normal(size=(6, 4 // groups, 3, 3)).astype(np.float32)
    y = pac.pac_conv2d(x, f, w, groups=groups, **o)
    y = y[0] if isinstance(y, tuple) else y
    g = rng.normal(size=y.shape).astype(np.float32)
    xt = pac.pac_conv2d_adjoint(g, f, w, groups=groups, **o)
    assert xt.shape == x.shape
    lhs = float(np.sum(y.astype(np.float64) * g))
    rhs = float(np.sum(x.astype(np.float64) * xt))
    assert abs(lhs - rhs) <= 1e-5 * (abs(lhs) + np.abs(y).sum())
    a = R.conv2d_matrix(
        f, w, H, W, groups=groups, **_oracle_options({k: v for k, v in opts.items() if k != "groups"}, m)
    )
    want = a.T @ g.ravel().astype(np.float64)
    np.testing.assert_allclose(xt.ravel(), want, rtol=0, atol=2e-6 * max(1.0, np.abs(want).max()))


def test_transposed_is_not_the_adjoint():
    """The transposed form evaluates K on the output grid: it is not the adjoint
    of the strided forward (the distinction the reference code blurs)."""
    rng = _rng(8)
    f = rng.normal(size=(8, 10, 3)).astype(np.float32)
    w = rng.normal(size=(1, 1, 3, 3)).astype(np.float32)
    y = rng.normal(size=(4, 5, 1)).astype(np.float32)
    adj = pac.pac_conv2d_adjoint(y, f, w, stride=2)
    tr = pac.pac_conv_transpose2d(y, f, w, stride=2, padding=1, output_padding=1)
    assert adj.shape == tr.shape
    assert np.abs(adj - tr).max() > 0.1


@pytest.mark.parametrize("s", [2, 3, 4, 8, 16])
def test_transposed_bilinear_keeps_constants_and_ramps_unshifted(s):
    """The bilinear upsampling kernel as a transposed PAC with K = 1 maps a ramp of
    the sample index q to the same ramp of the output pixel's centre
    (o + 0.5) / s - 0.5: no half-pixel shift at any scale."""
    k = 2 * s if s % 2 == 0 else 2 * s - 1  # pixel-centre padding needs k - s even
    t = (np.arange(k) - (k - 1) / 2) / s
    tri = np.maximum(0, 1 - np.abs(t))
    w = (tri[:, None] * tri[None, :])[None, None].astype(np.float32)
    h, wd = 6, 7
    qy, qx = np.mgrid[0:h, 0:wd].astype(np.float32)
    ramp = (3 * qy - 2 * qx + 5)[:, :, None]
    out = pac.pac_conv_transpose2d(ramp, np.zeros((h * s, wd * s, 1), np.float32), w, stride=s)[:, :, 0]
    oy, ox = np.mgrid[0 : h * s, 0 : wd * s]
    uy, ux = (oy + 0.5) / s - 0.5, (ox + 0.5) / s - 0.5
    inner = (uy >= 0) & (uy <= h - 1) & (ux >= 0) & (ux <= wd - 1)
    np.testing.assert_allclose(out[inner], (3 * uy - 2 * ux + 5)[inner], atol=1e-4)


@pytest.mark.parametrize("s", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("method", ["jbu", "bicubic", "bilinear"])
def test_resamplers_keep_constants_and_ramps_unshifted(s, method):
    h, wd = 9, 8
    qy, qx = np.mgrid[0:h, 0:wd].astype(np.float32)
    ramp = 0.5 * qy + 0.25 * qx - 1
    flat_guide = np.full((h * s, wd * s, 3), 128, np.uint8)
    const = np.full((h, wd), 7.25, np.float32)
    if method == "jbu":
        run = lambda a: pac.jbu(a, flat_guide)  # noqa: E731
    else:
        run = lambda a: resample.resize(a, (h * s, wd * s), method)  # noqa: E731
    np.testing.assert_allclose(run(const), 7.25, atol=1e-5)
    out = run(ramp)
    oy, ox = np.mgrid[0 : h * s, 0 : wd * s]
    uy, ux = (oy + 0.5) / s - 0.5, (ox + 0.5) / s - 0.5
    inner = (uy >= 2) & (uy <= h - 3) & (ux >= 2) & (ux <= wd - 3)
    np.testing.assert_allclose(out[inner], (0.5 * uy + 0.25 * ux - 1)[inner], atol=2e-5)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_jbu_is_a_transposed_pac_with_fixed_weights(s):
    """JBU = transposed PAC with W = 1, normalize, and features [colour / sigma_r,
    position / sigma_s] (positions in low-res pixels): the paper's special case."""
    rng = _rng(s)
    h, w = 5, 6
    lr = rng.normal(size=(h, w, 2)).astype(np.float32)
    g = rng.integers(0, 256, size=(h * s, w * s, 3)).astype(np.uint8)
    ss, sr = 0.8, 0.25
    got = pac.jbu(lr, g, sigma_spatial=ss, sigma_range=sr, linear=False)
    k = 4 * s if s % 2 == 0 else 4 * s - 1  # every sample closer than 2 low-res pixels
    yy, xx = np.mgrid[0 : h * s, 0 : w * s].astype(np.float64)
    feat = np.dstack([g / (255 * sr), yy / (ss * s), xx / (ss * s)]).astype(np.float32)
    ones = np.ones((2, 1, k, k), np.float32)
    want = pac.pac_conv_transpose2d(lr, feat, ones, stride=s, groups=2, normalize=True)
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_jbu_follows_guide_edges():
    """A depth step that the guide shows stays sharp; bicubic blurs it."""
    s = 8
    h, w = 8, 8
    lr = np.zeros((h, w), np.float32)
    lr[:, w // 2 :] = 1.0
    guide = np.zeros((h * s, w * s, 3), np.uint8)
    guide[:, (w // 2) * s :] = 255
    up = pac.jbu(lr, guide)
    edge = (w // 2) * s
    assert np.abs(up[:, : edge - 1]).max() < 1e-3 and np.abs(up[:, edge + 1 :] - 1).max() < 1e-3
    bic = resample.resize(lr, (h * s, w * s), "bicubic")
    assert np.abs(bic[:, edge - 4 : edge + 4] - (np.arange(8) >= 4)).max() > 0.2


def test_masked_resampling_fills_holes_from_valid_samples_only():
    rng = _rng(9)
    lr = rng.uniform(1, 2, size=(10, 12)).astype(np.float32)
    mask = np.ones_like(lr)
    mask[3:6, 4:8] = 0
    lr_holes = np.where(mask > 0, lr, 1e6).astype(np.float32)  # garbage in the holes
    guide = rng.integers(0, 256, size=(40, 48, 3)).astype(np.uint8)
    runs = {
        "jbu": (lambda a, m: pac.jbu(a, guide, mask=m), 0.0),  # positive weights: within the data's range
        "bicubic": (lambda a, m: resample.resize(a, (40, 48), "bicubic", mask=m), 0.3),  # lobes overshoot
    }
    for run, slack in runs.values():
        out, out_mask = run(lr_holes, mask)
        assert out_mask.all()
        assert 1 - slack - 1e-6 <= out.min() and out.max() <= 2 + slack + 1e-6
    # Far from a hole the masked form is the plain one.
    plain = pac.jbu(lr, guide)
    out, _ = pac.jbu(lr_holes, guide, mask=mask)
    np.testing.assert_allclose(out[30:, :10], plain[30:, :10], atol=1e-6)
    # All missing: mask 0, values 0.
    out, out_mask = pac.jbu(lr, guide, mask=np.zeros_like(mask))
    assert not out_mask.any() and not out.any()


def test_bicubic_matches_pillow():
    from PIL import Image

    rng = _rng(11)
    a = rng.uniform(0, 255, size=(23, 31)).astype(np.float32)
    for size in [(92, 124), (184, 248), (50, 70), (11, 9)]:
        want = np.asarray(Image.fromarray(a).resize(size[::-1], Image.BICUBIC))
        np.testing.assert_allclose(resample.resize(a, size, "bicubic"), want, atol=3e-4)


def test_results_are_the_same_bits_for_one_and_two_threads(tmp_path):
    script = textwrap.dedent(
        """
        import sys, hashlib, numba, numpy as np
        from pafu_cli import pac
        numba.set_num_threads(int(sys.argv[1]))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(37, 41, 3)).astype(np.float32)
        f = rng.normal(size=(37, 41, 2)).astype(np.float32)
        w = rng.normal(size=(4, 3, 5, 5)).astype(np.float32)
        g = rng.integers(0, 256, size=(296, 328, 3)).astype(np.uint8)
        outs = [
            pac.pac_conv2d(x, f, w, normalize=True, stride=2),
            pac.pac_conv2d_adjoint(rng.normal(size=(37, 41, 4)).astype(np.float32), f, w, normalize=True),
            pac.pac_conv_transpose2d(
                x, rng.normal(size=(74, 82, 2)).astype(np.float32),
                rng.normal(size=(3, 2, 4, 4)).astype(np.float32), stride=2, normalize=True,
            ),
            pac.jbu(x[:, :, 0], g),
        ]
        print(hashlib.sha256(b"".join(o.tobytes() for o in outs)).hexdigest())
        """
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script, str(n)], capture_output=True, text=True, check=True
        ).stdout
        for n in (1, 2)
    }
    assert len(digests) == 1


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: pac.pac_conv2d(np.zeros((5, 5)), np.zeros((5, 6)), np.ones((1, 1, 3, 3))), "guide"),
        (lambda: pac.pac_conv2d(np.zeros((5, 5)), np.zeros((5, 5)), np.ones((1, 1, 2, 2))), "odd"),
        (
            lambda: pac.pac_conv2d(np.zeros((5, 5)), np.zeros((5, 5)), np.ones((1, 2, 3, 3))),
            "second dimension",
        ),
        (
            lambda: pac.pac_conv2d(np.zeros((5, 5)), np.zeros((5, 5)), np.ones((1, 1, 3, 3)), padding=2),
            "padding",
        ),
        (
            lambda: pac.pac_conv2d(np.zeros((5, 5)), np.zeros((5, 5)), np.ones((1, 1, 3, 3)), kernel="box"),
            "kernel",
        ),
        (lambda: pac.pac_conv2d(np.full((5, 5), np.nan), np.zeros((5, 5)), np.ones((1, 1, 3, 3))), "NaN"),
        (
            lambda: pac.pac_conv2d(
                np.zeros((5, 5)), np.zeros((5, 5)), np.ones((1, 1, 3, 3)), mask=np.ones((4, 4))
            ),
            "mask",
        ),
        (
            lambda: pac.pac_conv_transpose2d(
                np.zeros((3, 3)), np.zeros((6, 6)), np.ones((1, 1, 3, 3)), stride=2
            ),
            "padding",
        ),
        (
            lambda: pac.pac_conv_transpose2d(
                np.zeros((3, 3)), np.zeros((5, 6)), np.ones((1, 1, 4, 4)), stride=2
            ),
            "guide",
        ),
        (lambda: pac.pac_conv2d_adjoint(np.zeros((4, 4)), np.zeros((5, 5)), np.ones((1, 1, 3, 3))), "y"),
        (
            lambda: pac.pac_conv2d(np.zeros((5, 5)), np.zeros((5, 5)), np.ones((1, 1, 3, 3)), stride=0),
            "stride",
        ),
    ],
)
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_windows_whose_weights_underflow_keep_their_samples():
    """Features so far apart that every exp(-d^2 / 2) underflows: the normalised
    window still averages its valid samples (the limit of the weights), and the
    output mask says the window held samples."""
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    guide = np.array([[60.0, 0.0, 60.0]], np.float32)
    mask = np.array([[1.0, 0.0, 1.0]], np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    y, out_mask = pac.pac_conv2d(x, guide, w, normalize=True, mask=mask)
    np.testing.assert_allclose(y[0, :, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out_mask, [[1, 1, 1]])
    want, want_mask = R.conv2d(x[:, :, None], guide[:, :, None], w, normalize=True, mask=mask)
    np.testing.assert_allclose(y, want, atol=1e-6)
    # The adjoint stays the transpose of this very map.
    g = np.array([[[0.5], [-1.0], [2.0]]], np.float32)
    xt = pac.pac_conv2d_adjoint(g, guide, w, normalize=True, mask=mask)
    assert abs(float((y * g).sum()) - float((x[:, :, None] * xt).sum())) < 1e-5

"""The PyTorch PAC operators (pafu_cli.training.pac) against the NumPy/Numba operators
(pafu_cli.pac, float32), the float64 per-pixel oracle (tests/pac_reference.py),
PyTorch's own convolutions (K = 1), the NumPy adjoint (the gradient in x), and
gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pac_reference as R
import torch.nn.functional as F

from pafu_cli import pac
from pafu_cli.filters.pac import ops
from pafu_cli.training.pac import layers as L

H, W = 7, 9  # odd, non-square: borders on every side, no symmetry to hide a transpose
N = 2  # a batch: each image is checked against the NumPy operator on its own
NUMPY_TOL = 1e-5  # the NumPy operators take float32 inputs and return float32
ORACLE_TOL = 1e-9  # both float64


def _rng(seed):
    return np.random.default_rng(seed)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64)


def _images(rng, n, h, w, c):
    return rng.normal(size=(n, h, w, c)).astype(np.float32)


def _masks(rng, n, h, w):
    """Holes (0) and confidences in [0.5, 1.5]."""
    keep = rng.random((n, h, w)) > 0.3
    return (keep * rng.uniform(0.5, 1.5, (n, h, w))).astype(np.float32)


def _close(got, want, tol):
    """|got - want| <= tol * max(1, max |want|); returns the deviation."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    dev = float(np.abs(got - want).max())
    scale = max(1.0, float(np.abs(want).max()))
    assert dev <= tol * scale, f"max deviation {dev:.3g} > {tol:g} x {scale:.3g}"
    return dev


def _oracle_options(opts):
    o = {k: v for k, v in opts.items() if k not in ("inv_alpha", "inv_lambda")}
    o["alpha"] = opts.get("inv_alpha", 0.0)
    o["lam"] = opts.get("inv_lambda", -1.0)
    return o


def _ids(o):
    return ",".join(f"{k}={v}" for k, v in o.items()) or "plain"


# --------------------------------------------------------------------------- forward


FORWARD_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=3, padding=0),
    dict(dilation=2),
    dict(dilation=2, stride=2, padding=1),
    dict(padding=1),
    dict(normalize=True),
    dict(normalize=True, mask=True),
    dict(mask=True),
    dict(stride=2, normalize=True, mask=True),
    dict(kernel="inv", inv_alpha=0.2, inv_lambda=-1.0),
    dict(kernel="inv", inv_alpha=0.0, inv_lambda=-2.0, normalize=True, mask=True),
    dict(asymmetric=True),
    dict(asymmetric=True, normalize=True, stride=2),
]


@pytest.mark.parametrize("opts", FORWARD_CASES, ids=_ids)
@pytest.mark.parametrize("k,groups", [(3, 1), (5, 2)])
def test_conv2d_matches_numpy_and_oracle(opts, k, groups):
    rng = _rng(k * 31 + groups)
    x, f = _images(rng, N, H, W, 4), _images(rng, N, H, W, 3)
    m = _masks(rng, N, H, W)
    w = rng.normal(size=(6, 4 // groups, k, k)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    o = dict(opts, groups=groups)
    masked = o.pop("mask", False)
    got = L.pac_conv2d(
        _t(x).permute(0, 3, 1, 2),
        _t(f).permute(0, 3, 1, 2),
        _t(w),
        _t(b),
        **o,
        mask=_t(m)[:, None] if masked else None,
    )
    got, got_mask = got if masked else (got, None)
    for i in range(N):
        want = pac.pac_conv2d(x[i], f[i], w, b, mask=m[i] if masked else None, **o)
        if masked:
            want, want_mask = want
            np.testing.assert_array_equal(L.to_hwc(got_mask, i)[:, :, 0], want_mask)
        _close(L.to_hwc(got, i), want, NUMPY_TOL)
    oracle, oracle_mask = R.conv2d(x[0], f[0], w, b, mask=m[0] if masked else None, **_oracle_options(o))
    _close(L.to_hwc(got, 0), oracle, ORACLE_TOL)
    if masked:
        np.testing.assert_array_equal(L.to_hwc(got_mask, 0)[:, :, 0], oracle_mask)


@pytest.mark.parametrize("opts", FORWARD_CASES[:12:2], ids=_ids)
def test_pool2d_matches_numpy_and_oracle(opts):
    rng = _rng(5)
    x, f, m = _images(rng, N, H, W, 3), _images(rng, N, H, W, 2), _masks(rng, N, H, W)
    o = dict(opts)
    masked = o.pop("mask", False)
    tm = _t(m)[:, None] if masked else None
    got = L.pac_pool2d(L.to_nchw(x), L.to_nchw(f), 3, mask=tm, **o)
    got, got_mask = got if masked else (got, None)
    for i in range(N):
        want = pac.pac_pool2d(x[i], f[i], 3, mask=m[i] if masked else None, **o)
        if masked:
            want, want_mask = want
            np.testing.assert_array_equal(L.to_hwc(got_mask, i)[:, :, 0], want_mask)
        _close(L.to_hwc(got, i), want, NUMPY_TOL)
    ones = np.ones((3, 1, 3, 3))  # depthwise ones = pooling
    oracle, _ = R.conv2d(x[0], f[0], ones, groups=3, mask=m[0] if masked else None, **_oracle_options(o))
    _close(L.to_hwc(got, 0), oracle, ORACLE_TOL)


# --------------------------------------------------------------------------- transposed


TRANSPOSED_CASES = [
    dict(stride=2, k=4),
    dict(stride=2, k=4, normalize=True, mask=True),
    dict(stride=3, k=3),
    dict(stride=3, k=5, mask=True),
    dict(stride=2, k=3, padding=1, output_padding=1),
    dict(stride=2, k=3, dilation=2, padding=2),
    dict(stride=2, k=5, padding=0, output_padding=1, normalize=True),
    dict(stride=4, k=8, kernel="inv", inv_alpha=0.1, inv_lambda=-1.0),
    dict(stride=2, k=6, asymmetric=True, normalize=True),
]


def _transposed_size(h, s, k, d, p, op):
    return (h - 1) * s - 2 * p + d * (k - 1) + op + 1


@pytest.mark.parametrize("opts", TRANSPOSED_CASES, ids=_ids)
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose2d_matches_numpy_and_oracle(opts, groups):
    o = dict(opts, groups=groups)
    s, k = o.pop("stride"), o.pop("k")
    masked = o.pop("mask", False)
    d, op = o.get("dilation", 1), o.get("output_padding", 0)
    p = o.get("padding", (d * (k - 1) + 1 - s) // 2)
    rng = _rng(s * 10 + k + groups)
    h, w = 4, 5
    ho, wo = _transposed_size(h, s, k, d, p, op), _transposed_size(w, s, k, d, p, op)
    x, m = _images(rng, N, h, w, 4), _masks(rng, N, h, w)
    f, g = _images(rng, N, ho, wo, 3), _images(rng, N, h, w, 3)
    weight = rng.normal(size=(4, 6 // groups, k, k)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    tm = _t(m)[:, None] if masked else None
    tx, tf, tw, tb = L.to_nchw(x), L.to_nchw(f), _t(weight), _t(b)
    for sample in (None, g):  # the default (footprint mean) and given sample features
        got = L.pac_conv_transpose2d(
            tx, tf, tw, tb, stride=s, mask=tm, sample_f=None if sample is None else L.to_nchw(g), **o
        )
        got, got_mask = got if masked else (got, None)
        assert got.shape == (N, 6, ho, wo)
        for i in range(N):
            want = pac.pac_conv_transpose2d(
                x[i],
                f[i],
                weight,
                b,
                stride=s,
                mask=m[i] if masked else None,
                sample_guide=None if sample is None else g[i],
                **o,
            )
            if masked:
                want, want_mask = want
                np.testing.assert_array_equal(L.to_hwc(got_mask, i)[:, :, 0], want_mask)
            _close(L.to_hwc(got, i), want, NUMPY_TOL)
        gq = g[0] if sample is not None else ops.block_mean(f[0], h, w, s, (d * (k - 1) - 2 * p - s + 1) // 2)
        ro = _oracle_options(dict(o, padding=p))
        oracle, oracle_mask = R.conv_transpose2d(
            x[0], f[0], gq, weight, b, stride=s, mask=m[0] if masked else None, **ro
        )
        # the default sample features are float32 in NumPy, float64 here
        _close(L.to_hwc(got, 0), oracle, ORACLE_TOL if sample is not None else NUMPY_TOL)
        if masked:
            np.testing.assert_array_equal(L.to_hwc(got_mask, 0)[:, :, 0], oracle_mask)


@pytest.mark.parametrize("s,offset", [(2, 0), (2, -1), (3, 0), (3, 1), (4, -2)])
def test_block_mean_matches_numpy(s, offset):
    f = _images(_rng(s), 1, 11, 13, 2)
    n_rows, n_cols = -(-11 // s) + 1, -(-13 // s) + 1  # a row and a column beyond the image too
    got = L.block_mean(L.to_nchw(f), n_rows, n_cols, s, offset)
    want = ops.block_mean(f[0], n_rows, n_cols, s, offset)
    _close(L.to_hwc(got), want, 1e-6)


# --------------------------------------------------------------------------- K = 1


@pytest.mark.parametrize(
    "s,d,p,groups", [(1, 1, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1), (2, 2, 0, 4), (3, 1, None, 1)]
)
def test_conv2d_with_k_equal_1_is_conv2d(s, d, p, groups):
    rng = _rng(s * 7 + d)
    x = torch.from_numpy(rng.normal(size=(N, 4, H, W)))
    w = torch.from_numpy(rng.normal(size=(8, 4 // groups, 3, 3)))
    b = torch.from_numpy(rng.normal(size=8))
    flat = torch.full((N, 2, H, W), 0.7, dtype=torch.float64)
    got = L.pac_conv2d(x, flat, w, b, stride=s, padding=p, dilation=d, groups=groups)
    want = F.conv2d(x, w, b, stride=s, padding=d if p is None else p, dilation=d, groups=groups)
    _close(got, want, 1e-12)


@pytest.mark.parametrize(
    "s,k,d,p,op,groups",
    [
        (2, 4, 1, 1, 0, 1),
        (3, 3, 1, 0, 0, 2),
        (2, 5, 1, 2, 1, 1),
        (4, 3, 2, 1, 1, 2),
        (2, 3, 1, 1, 1, 1),
        (2, 3, 2, 2, 0, 1),
    ],
)
def test_transposed_with_k_equal_1_is_conv_transpose2d(s, k, d, p, op, groups):
    rng = _rng(s + k)
    x = torch.from_numpy(rng.normal(size=(N, 4, 5, 6)))
    w = torch.from_numpy(rng.normal(size=(4, 6 // groups, k, k)))
    b = torch.from_numpy(rng.normal(size=6))
    want = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    flat = torch.zeros((N, 2) + tuple(want.shape[2:]), dtype=torch.float64)
    got = L.pac_conv_transpose2d(
        x, flat, w, b, stride=s, padding=p, output_padding=op, groups=groups, dilation=d
    )
    _close(got, want, 1e-12)


# --------------------------------------------------------------------------- gradients


def _leaf(rng, *shape):
    return torch.from_numpy(rng.normal(size=shape)).requires_grad_()


# gradcheck: the full Jacobians without recomputation; fast mode (random projections)
# through the checkpointed taps, whose gradients are then checked equal to the others.


def test_gradcheck_conv2d_normalize_mask():
    rng = _rng(1)
    x, f, w, b = _leaf(rng, 1, 2, 4, 5), _leaf(rng, 1, 2, 4, 5), _leaf(rng, 3, 2, 3, 3), _leaf(rng, 3)
    m = torch.from_numpy((rng.random((1, 1, 4, 5)) > 0.3) * rng.uniform(0.5, 1.5, (1, 1, 4, 5)))

    def fn(x, f, w, b):
        return L.pac_conv2d(x, f, w, b, normalize=True, mask=m, recompute=False)[0]

    assert torch.autograd.gradcheck(fn, (x, f, w, b))


def test_gradcheck_conv2d_inv_strided_grouped_with_learned_alpha_lambda():
    rng = _rng(2)
    x, f, w = _leaf(rng, 1, 2, 4, 5), _leaf(rng, 1, 2, 4, 5), _leaf(rng, 2, 1, 3, 3)
    alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)

    def fn(x, f, w, alpha, lam):
        return L.pac_conv2d(x, f, w, stride=2, groups=2, kernel="inv", inv_alpha=alpha, inv_lambda=lam)

    assert torch.autograd.gradcheck(fn, (x, f, w, alpha, lam), fast_mode=True)


def test_gradcheck_conv_transpose2d():
    """Default sample features: the gradient in f also flows through the footprint means."""
    rng = _rng(3)
    x, f, w, b = _leaf(rng, 1, 2, 3, 3), _leaf(rng, 1, 2, 6, 6), _leaf(rng, 2, 2, 4, 4), _leaf(rng, 2)
    m = torch.from_numpy((rng.random((1, 1, 3, 3)) > 0.3) * 1.0)

    def fn(x, f, w, b):
        return L.pac_conv_transpose2d(x, f, w, b, stride=2, normalize=True, mask=m, recompute=False)[0]

    assert torch.autograd.gradcheck(fn, (x, f, w, b))


def test_gradcheck_pool2d():
    rng = _rng(4)
    x, f = _leaf(rng, 1, 2, 4, 5), _leaf(rng, 1, 3, 4, 5)
    assert torch.autograd.gradcheck(
        lambda x, f: L.pac_pool2d(x, f, 3, normalize=True), (x, f), fast_mode=True
    )


def _saved_bytes(fn):
    """What autograd keeps for the backward pass of ``fn()`` (distinct storages), and
    ``fn()``."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


@pytest.mark.parametrize("transposed", [False, True])
def test_recompute_keeps_no_per_tap_tensors_and_gives_the_same_gradients(transposed):
    rng = _rng(11)
    hi = _leaf(rng, 1, 3, 16, 18)
    f = _leaf(rng, 1, 3, 16, 18)
    if transposed:
        x, w = _leaf(rng, 1, 8, 8, 9), _leaf(rng, 8, 8, 4, 4)
        m = torch.from_numpy(_masks(rng, 1, 8, 9)[:, None]).double()
        run = lambda r: L.pac_conv_transpose2d(x, f, w, stride=2, normalize=True, mask=m, recompute=r)  # noqa: E731
    else:
        x, w = hi, _leaf(rng, 8, 3, 5, 5)
        m = torch.from_numpy(_masks(rng, 1, 16, 18)[:, None]).double()
        run = lambda r: L.pac_conv2d(x, f, w, normalize=True, mask=m, recompute=r)  # noqa: E731
    grads = {}
    for r in (False, True):
        saved, (y, _) = _saved_bytes(lambda r=r: run(r))
        grads[r] = torch.autograd.grad((y * y).sum(), (x, f, w))
        if r:
            inputs = sum(t.numel() * t.element_size() for t in (x, f, m, y))
            assert saved < 2 * inputs, (saved, inputs)
        else:
            assert saved > 4 * y.numel() * y.element_size()  # k^2 taps' worth
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "opts",
    [dict(stride=2, normalize=True, mask=True), dict(kernel="inv", asymmetric=True, groups=2)],
    ids=_ids,
)
def test_gradient_in_x_is_the_numpy_adjoint(opts):
    """The gradient of <pac_conv2d(x), g> in x is pac_conv2d_adjoint(g) (NumPy's exact
    adjoint): the two packages agree on the transpose as well as on the operator."""
    o = dict(opts)
    masked = o.pop("mask", False)
    rng = _rng(6)
    x, f, m = _images(rng, 1, H, W, 4), _images(rng, 1, H, W, 3), _masks(rng, 1, H, W)
    w = rng.normal(size=(6, 4 // o.get("groups", 1), 3, 3)).astype(np.float32)
    tx = L.to_nchw(x).requires_grad_()
    y = L.pac_conv2d(tx, L.to_nchw(f), _t(w), mask=_t(m)[:, None] if masked else None, **o)
    y = y[0] if masked else y
    g = rng.normal(size=y.shape)
    (y * torch.from_numpy(g)).sum().backward()
    want = pac.pac_conv2d_adjoint(g[0].transpose(1, 2, 0), f[0], w, mask=m[0] if masked else None, **o)
    _close(L.to_hwc(tx.grad), want, NUMPY_TOL)


def test_gradients_reach_every_input_and_are_finite():
    rng = _rng(7)
    x, f, w, b = _leaf(rng, N, 3, H, W), _leaf(rng, N, 2, H, W), _leaf(rng, 4, 3, 3, 3), _leaf(rng, 4)
    m = torch.zeros((N, 1, H, W), dtype=torch.float64)
    m[:, :, :3] = 1.0  # rows 5 and 6: windows without a valid sample (normaliser 0)
    y, ymask = L.pac_conv2d(x, f, w, b, normalize=True, mask=m)
    assert (ymask[:, :, 5:] == 0).all() and torch.isfinite(y).all()
    (y**2).sum().backward()
    for t in (x, f, w, b):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


# --------------------------------------------------------------------------- modules


def test_conv2d_module_matches_function_and_numpy():
    torch.manual_seed(0)
    layer = L.PacConv2d(4, 6, 3, stride=2, groups=2, normalize=True, kernel="inv", inv_alpha=0.1)
    rng = _rng(8)
    x, f, m = _images(rng, 1, H, W, 4), _images(rng, 1, H, W, 3), _masks(rng, 1, H, W)
    tx, tf, tm = L.to_nchw(x, torch.float32), L.to_nchw(f, torch.float32), L.mask_to_nchw(m[0], torch.float32)
    got, got_mask = layer(tx, tf, tm)
    want = L.pac_conv2d(
        tx,
        tf,
        layer.weight,
        layer.bias,
        stride=2,
        groups=2,
        normalize=True,
        mask=tm,
        kernel="inv",
        inv_alpha=0.1,
    )
    assert torch.equal(got, want[0]) and torch.equal(got_mask, want[1])
    engine, engine_mask = pac.pac_conv2d(x[0], f[0], mask=m[0], **layer.numpy_kwargs())
    _close(L.to_hwc(got), engine, NUMPY_TOL)
    np.testing.assert_array_equal(L.to_hwc(got_mask)[:, :, 0], engine_mask)


def test_transposed_module_matches_function_and_numpy():
    torch.manual_seed(0)
    layer = L.PacConvTranspose2d(4, 2, 4, stride=2, normalize=True)
    rng = _rng(9)
    x, f = _images(rng, 1, 4, 5, 4), _images(rng, 1, 8, 10, 3)
    tx, tf = L.to_nchw(x, torch.float32), L.to_nchw(f, torch.float32)
    got = layer(tx, tf)
    want = L.pac_conv_transpose2d(tx, tf, layer.weight, layer.bias, stride=2, normalize=True)
    assert torch.equal(got, want)
    _close(L.to_hwc(got), pac.pac_conv_transpose2d(x[0], f[0], **layer.numpy_kwargs()), NUMPY_TOL)


def test_modules_initialise_like_torch_convolutions():
    torch.manual_seed(3)
    ref = torch.nn.Conv2d(4, 6, 3, groups=2)
    torch.manual_seed(3)
    layer = L.PacConv2d(4, 6, 3, groups=2)
    assert torch.equal(layer.weight, ref.weight) and torch.equal(layer.bias, ref.bias)
    torch.manual_seed(3)
    ref = torch.nn.ConvTranspose2d(4, 6, 4, stride=2, groups=2)
    torch.manual_seed(3)
    layer = L.PacConvTranspose2d(4, 6, 4, stride=2, groups=2)
    assert torch.equal(layer.weight, ref.weight) and torch.equal(layer.bias, ref.bias)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda x, f: L.pac_conv2d(x, f, torch.ones(2, 3, 2, 2)), "odd"),
        (lambda x, f: L.pac_conv2d(x, f, torch.ones(2, 3, 3, 3), padding=2), "exceeds"),
        (lambda x, f: L.pac_conv2d(x, f, torch.ones(2, 2, 3, 3)), "input channels"),
        (lambda x, f: L.pac_conv2d(x, f[:, :, 1:], torch.ones(2, 3, 3, 3)), "pixels"),
        (lambda x, f: L.pac_conv2d(x, f, torch.ones(2, 3, 3, 3), kernel="box"), "kernel must be"),
        (lambda x, f: L.pac_conv2d(x, f, torch.ones(2, 3, 3, 3), mask=f), "channel"),
        (lambda x, f: L.pac_conv_transpose2d(x, f, torch.ones(3, 1, 3, 3), stride=2), "pixel-centre"),
        (lambda x, f: L.pac_conv_transpose2d(x, f, torch.ones(3, 1, 4, 4), stride=2), "pixels"),
        (
            lambda x, f: L.pac_conv_transpose2d(x, f, torch.ones(3, 1, 4, 4), output_padding=2),
            "output_padding",
        ),
    ],
)
def test_bad_arguments_are_clear_errors(call, message):
    x, f = torch.ones(1, 3, 5, 6), torch.zeros(1, 2, 5, 6)
    with pytest.raises((ValueError, TypeError), match=message):
        call(x, f)

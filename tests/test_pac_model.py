"""The learned guided upsampler (family ``pac``): the PyTorch network and the Numba
engine compute the same thing, the untrained network is JBU, the model file
round-trips and bad files are refused in one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pafu_cli import guided_upsample, pac
from pafu_cli.errors import ModelError
from pafu_cli.filters.pac import engine
from pafu_cli.models.format import load_model, save_model

torch = pytest.importorskip("torch")

from pafu_cli.training.pac.guided import GuidedJbuNet, export  # noqa: E402


def _random_net(seed=0):
    torch.manual_seed(seed)
    net = GuidedJbuNet()
    with torch.no_grad():
        for p in (net.g2.weight, net.g2.bias, net.head.weight, net.head.bias):
            p.normal_(0, 0.3)
        for s in net.scales:
            net.spatial[str(s)].add_(torch.randn_like(net.spatial[str(s)]) * 0.3)
    return net


def _torch_run(net, lr, valid, guide, s):
    v = lr[valid > 0]
    lo, span = float(v.min()), float(v.max() - v.min())
    with torch.no_grad():
        x = torch.tensor(np.where(valid > 0, (lr - lo) / span, 0), dtype=torch.float32)[None, None]
        g = torch.tensor(guide.transpose(2, 0, 1) / 255.0, dtype=torch.float32)[None]
        y = net(x, torch.tensor(valid)[None, None], g, s)[0, 0].numpy()
    return y * span + lo


@pytest.mark.parametrize("s", [4, 8, 16])
def test_engine_matches_the_torch_network(s):
    net = _random_net(s)
    model = export(net, "random", {})
    rng = np.random.default_rng(s)
    h, w = 7, 9
    lr = rng.uniform(20, 200, (h, w)).astype(np.float32)
    valid = (rng.random((h, w)) > 0.2).astype(np.float32)
    guide = rng.integers(0, 256, (h * s, w * s, 3)).astype(np.uint8)
    want = _torch_run(net, lr, valid, guide, s)
    got = engine.run(model, lr, guide, (h * s, w * s), valid)
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert np.abs(want - pac.jbu(lr, guide, mask=valid)[0]).max() > 0.5  # the random net is not JBU


@pytest.mark.parametrize("s", [4, 8, 16])
def test_the_untrained_network_is_jbu(s):
    model = export(GuidedJbuNet(), "untrained", {})
    rng = np.random.default_rng(s)
    lr = rng.uniform(0, 1, (6, 5)).astype(np.float32)
    guide = rng.integers(0, 256, (6 * s, 5 * s, 3)).astype(np.uint8)
    np.testing.assert_allclose(engine.run(model, lr, guide, guide.shape[:2]), pac.jbu(lr, guide), atol=1e-5)


def test_model_file_round_trip_and_use(tmp_path):
    model = export(_random_net(1), "round", {"command": "test", "seed": 1})
    p = tmp_path / "m.npz"
    save_model(model, p)
    m = load_model(p)
    assert m.family == "pac" and m.scales == (4, 8, 16) and m.provenance["seed"] == 1
    for s in m.scales:
        np.testing.assert_array_equal(m.spatial[s], model.spatial[s])
    rng = np.random.default_rng(2)
    lr = rng.uniform(1, 2, (8, 10)).astype(np.float32)
    lr[3, 4] = np.nan
    guide = rng.integers(0, 256, (64, 80, 3)).astype(np.uint8)
    y = guided_upsample(lr, guide, method=str(p))
    assert y.shape == (64, 80) and np.isfinite(y).all()
    # A size that is no model scale: run at the next scale up, then resized.
    y = guided_upsample(lr, guide[:50, :70], method=m)
    assert y.shape == (50, 70) and np.isfinite(y).all()
    flat = guided_upsample(np.full((8, 10), 7.0), guide, method=m)
    np.testing.assert_allclose(flat, 7.0, atol=1e-4)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"spatial_x8": -np.ones((8, 5), np.float32)}, "negative"),
        ({"guide_w2": np.ones((4, 3, 1, 1), np.float32)}, "guide_w2"),
        ({"scales": np.array([4, 8, 32])}, "spatial_x32"),
        ({"task": np.array("upscale")}, "task"),
    ],
)
def test_bad_model_files_are_refused(tmp_path, change, message):
    from pafu_cli.filters.pac.model import to_arrays

    arrays = {
        "format_version": np.int64(2),
        "family": np.array("pac"),
        **to_arrays(export(GuidedJbuNet(), "x", {})),
    }
    arrays.update(change)
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(ModelError, match=message) as e:
        load_model(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("s, widths", [(4, (8, 4, 24)), (16, (8, 4, 24)), (8, (12, 6, 48)), (4, (3, 1, 5))])
def test_engine_matches_the_torch_network_with_slopes(s, widths):
    torch.manual_seed(s)
    hidden, feat, width = widths
    net = GuidedJbuNet(slopes=True, hidden=hidden, feat=feat, width=width)
    with torch.no_grad():
        for p in (net.g2.weight, net.head.weight, net.head.bias):
            p.normal_(0, 0.3)
    model = export(net, "planes", {})
    assert model.slopes and (model.feat, model.guide_b1.shape[0]) == (feat, hidden)
    rng = np.random.default_rng(s)
    h, w = 6, 8
    lr = rng.uniform(20, 200, (h, w)).astype(np.float32)
    valid = (rng.random((h, w)) > 0.2).astype(np.float32)
    guide = rng.integers(0, 256, (h * s, w * s, 3)).astype(np.uint8)
    np.testing.assert_allclose(
        engine.run(model, lr, guide, (h * s, w * s), valid), _torch_run(net, lr, valid, guide, s), atol=2e-3
    )


@pytest.mark.parametrize("slopes", [False, True])
def test_from_model_is_the_inverse_of_export(slopes):
    """A warm start (``pafu train --init-from``) begins from the model's exact function."""
    from pafu_cli.training.pac.guided import from_model

    torch.manual_seed(3)
    net = GuidedJbuNet(feat=2, hidden=5, width=7, slopes=slopes)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model = export(net, "m", {})
    back = from_model(model)
    assert (back.feat, back.hidden, back.width, back.slopes) == (2, 5, 7, slopes)
    rng = np.random.default_rng(4)
    lr = rng.uniform(20, 200, (6, 7)).astype(np.float32)
    valid = (rng.random((6, 7)) > 0.2).astype(np.float32)
    guide = rng.integers(0, 256, (48, 56, 3)).astype(np.uint8)
    np.testing.assert_allclose(
        _torch_run(back, lr, valid, guide, 8), _torch_run(net, lr, valid, guide, 8), atol=1e-4
    )
    with pytest.raises(ValueError, match="not a guided_upsample"):
        from_model(dataclasses.replace(model, task="upscale"))


def test_a_hole_out_of_reach_is_nan_in_both_and_trains_without_nan():
    """Where no valid sample is within reach, the network and the engine both leave a
    hole (NaN), and a training step on such a patch keeps every gradient finite."""
    net = _random_net(5)
    model = export(net, "holes", {})
    rng = np.random.default_rng(6)
    h, w, s = 12, 12, 4
    lr = rng.uniform(20, 200, (h, w)).astype(np.float32)
    valid = np.ones((h, w), np.float32)
    valid[2:10, 2:10] = 0  # 8 x 8 low-res samples lost: the middle is out of reach
    guide = rng.integers(0, 256, (h * s, w * s, 3)).astype(np.uint8)
    want = _torch_run(net, lr, valid, guide, s)
    got = engine.run(model, lr, guide, (h * s, w * s), valid)
    assert np.isnan(want[20:28, 20:28]).all() and np.isfinite(want[:4]).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=2e-3)
    x = torch.tensor(np.where(valid > 0, lr / 255, 0), dtype=torch.float32)[None, None]
    g = torch.tensor(guide.transpose(2, 0, 1) / 255.0, dtype=torch.float32)[None]
    y = net(x, torch.tensor(valid)[None, None], g, s)
    err = (y - 0.5).abs()
    err[torch.isfinite(err)].mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_a_missing_sample_nearer_in_features_than_the_valid_ones_is_harmless():
    """A missing sample (weight 0) whose features match the output pixel's far better
    than every valid sample's: no overflow, no NaN in the output or the gradients."""
    from pafu_cli.training.pac.guided import jbu_spatial, learned_jbu

    s, h, w = 4, 3, 3
    f = torch.zeros(1, 2, h * s, w * s)
    g = torch.full((1, 2, h, w), 30.0, requires_grad=True)  # far from f: |f - g|^2 = 1800
    with torch.no_grad():
        g[0, :, 1, 1] = 0.0  # the centre sample matches f exactly, but it is missing
    d = torch.rand(1, 1, h, w, requires_grad=True)
    c = torch.ones(1, 1, h, w)
    c[0, 0, 1, 1] = 0.0
    a = torch.tensor(jbu_spatial(s), dtype=torch.float32, requires_grad=True)
    y = learned_jbu(f, g, d, c, s, a, a)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (g, d, a))

"""Training pipeline: data synthesis, PyTorch-to-Numba parity, the SAD toy proof."""

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from pafu_cli.cfa import PATTERNS, mosaic, to_packed_rggb
from pafu_cli.demosaick import demosaick
from pafu_cli.filters.pafu import engine
from pafu_cli.filters.pafu.model import load_model, save_model
from pafu_cli.training import data as tdata
from pafu_cli.training.pafu.module import PafuNet


def _randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        net.bank.mul_(net.mask)


@pytest.mark.parametrize("task,scale", [("upscale", 2), ("upscale", 3), ("demosaick", 1)])
def test_exported_model_matches_torch_argmax(tmp_path, task, scale):
    torch.manual_seed(0)
    net = PafuNet(task, scale, n_kernels=6, kernel_sizes=[5, 3, 5, 1, 3, 5], width=8, depth=3)
    _randomise(net, 1)
    save_model(net.to_model(name="t"), tmp_path / "t.npz")
    m = load_model(tmp_path / "t.npz")
    rng = np.random.default_rng(3)
    if task == "upscale":
        x = rng.random((1, 3, 19, 22), dtype=np.float32)
        net_in = torch.from_numpy(x)
        eng_in = x[0].transpose(1, 2, 0)
    else:
        x = rng.random((1, 1, 20, 26), dtype=np.float32)
        net_in = torch.from_numpy(x)
        eng_in, _ = to_packed_rggb(x[0, 0], "RGGB", 0)
    with torch.no_grad():
        want, sel = net(net_in, mode="argmax")
        logits = net.logits(net.prepare(net_in))[0].numpy().transpose(1, 2, 0)
    out, idx = engine.run(m, eng_in)
    top2 = np.sort(logits, axis=2)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-4
    assert clear.mean() > 0.98
    np.testing.assert_array_equal(idx[clear], sel[0].argmax(0).numpy()[clear])
    assert len(np.unique(idx)) >= 3
    s = m.shuffle
    ok = np.repeat(np.repeat(idx == sel[0].argmax(0).numpy(), s, 0), s, 1)
    np.testing.assert_allclose(out[ok], want[0].numpy().transpose(1, 2, 0)[ok], atol=1e-4)


def test_mosaics_cover_all_layouts_and_shift_to_rggb():
    yy, xx = np.mgrid[0:40, 0:40]
    img = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=2).astype(np.uint8)
    src = tdata.BayerImages([img])
    x, y = src.sample(np.random.default_rng(0), 16, 8, tdata.NoiseRange())
    assert x.shape == (16, 1, 8, 8) and y.shape == (16, 3, 8, 8)
    # Every training mosaic is RGGB-phased: R at (0,0), G at (0,1)/(1,0), B at (1,1).
    np.testing.assert_array_equal(x[:, 0, 0::2, 0::2], y[:, 0, 0::2, 0::2])
    np.testing.assert_array_equal(x[:, 0, 0::2, 1::2], y[:, 1, 0::2, 1::2])
    np.testing.assert_array_equal(x[:, 0, 1::2, 1::2], y[:, 2, 1::2, 1::2])
    for p in PATTERNS:  # and inference's phase shift agrees with training's crop
        rgb = img[:9, :11].astype(np.float32) / 255
        out = demosaick(mosaic(rgb, p), p, model="bilinear")
        assert out.shape == (9, 11, 3)


def test_heteroskedastic_noise_statistics():
    noise = tdata.NoiseRange(a_max=0.02, sigma_max=0.0)
    rng = np.random.default_rng(1)
    lo = np.full((200, 200), 0.1, np.float32)
    hi = np.full((200, 200), 0.6, np.float32)
    sd_lo = np.mean([np.std(noise.apply(np.random.default_rng(i), lo)) for i in range(20)])
    sd_hi = np.mean([np.std(noise.apply(np.random.default_rng(i), hi)) for i in range(20)])
    # variance a*x: the brighter patch is noisier by about sqrt(6)
    assert 2.0 < sd_hi / sd_lo < 3.0
    assert np.array_equal(tdata.NoiseRange().apply(rng, lo), lo)


def test_split_always_validates_when_it_can():
    assert tdata.split_files(list("abcdefghijkl")) == (list("abcdefghikl"), ["j"])
    assert tdata.split_files(list("abc")) == (["a", "b"], ["c"])
    assert tdata.split_files(["a"]) == (["a"], [])


def test_noise_specialist_range():
    noise = tdata.NoiseRange(sigma_max=0.04, sigma_min=0.03)
    flat = np.full((300, 300), 0.5, np.float32)
    sds = [np.std(noise.apply(np.random.default_rng(i), flat)) for i in range(30)]
    assert 0.029 < min(sds) and max(sds) < 0.041


@pytest.mark.parametrize("sat_max", [2.0, 3.0])
def test_colour_variation_keeps_grey_and_scales_chroma_within_range(sat_max):
    rng = np.random.default_rng(0)
    base = 0.5 + 0.05 * rng.standard_normal((8, 8, 3)).astype(np.float32)  # small chroma: no clipping
    factors = []
    for i in range(200):
        out = tdata.vary_colours(np.random.default_rng(i), base, sat_max)
        np.testing.assert_allclose(out.mean(2), base.mean(2), atol=1e-6)  # grey axis kept
        chroma_in = (base - base.mean(2, keepdims=True)) ** 2
        chroma_out = (out - out.mean(2, keepdims=True)) ** 2
        factors.append(np.sqrt(chroma_out.sum() / chroma_in.sum()))
    assert 0.5 - 1e-5 <= min(factors) < 0.6 and sat_max * 0.9 < max(factors) <= sat_max + 1e-5


def _small_demosaick_net():
    """A small random demosaick network (3 kernels, damped bank) for validation tests."""
    torch.manual_seed(0)
    net = PafuNet("demosaick", 1, n_kernels=3, kernel_sizes=[5, 3, 5], width=4, depth=2)
    _randomise(net, 4)
    with torch.no_grad():
        net.bank.mul_(0.1)
    return net


def test_validation_on_saturated_images_scores_the_saturated_pictures(tmp_path):
    import imageio.v3 as iio

    from pafu_cli.training.pafu.loop import TrainConfig, evaluate

    im = np.random.default_rng(2).integers(100, 160, (6, 5, 3)).astype(np.uint8)  # x2 stays in range
    np.testing.assert_array_equal(tdata.saturate8(im, 1.0), im)
    sat = tdata.saturate8(im, 2.0)
    assert np.abs(sat.astype(float).mean(2) - im.astype(float).mean(2)).max() <= 1  # grey kept (rounding)
    assert np.ptp(sat.astype(float), axis=2).mean() > 1.5 * np.ptp(im.astype(float), axis=2).mean()
    data = _toy_images(tmp_path)
    pre = tmp_path / "pre"
    pre.mkdir()
    for f in sorted(data.glob("*.png")):
        iio.imwrite(pre / f.name, tdata.saturate8(iio.imread(f), 2.0))
    net = _small_demosaick_net()
    files = sorted(str(f) for f in data.glob("*.png"))
    cfg = TrainConfig(task="demosaick", val_sigma=3 / 255, val_saturation=2.0)
    on_the_fly = evaluate(net, files, cfg)
    assert on_the_fly == evaluate(
        net, sorted(str(f) for f in pre.glob("*.png")), TrainConfig(task="demosaick", val_sigma=3 / 255)
    )
    assert abs(on_the_fly - evaluate(net, files, TrainConfig(task="demosaick", val_sigma=3 / 255))) > 0.01


def test_channel_inversion_flips_exactly_one_channel_of_each_patch():
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 1, (6, 7, 3)).astype(np.float32)
    seen = set()
    for i in range(60):
        out = tdata.invert_channel(np.random.default_rng(i), rgb)
        flipped = [c for c in range(3) if not np.array_equal(out[..., c], rgb[..., c])]
        assert len(flipped) == 1
        np.testing.assert_allclose(out[..., flipped[0]], 1 - rgb[..., flipped[0]], atol=1e-7)
        seen.add(flipped[0])
    assert seen == {0, 1, 2}
    # In the sampler: a flat colour picture gives patches with one channel inverted, never two.
    flat = np.empty((40, 40, 3), np.uint8)
    flat[:] = (51, 102, 204)
    src = tdata.BayerImages([flat])
    _, y = src.sample(np.random.default_rng(0), 24, 8, tdata.NoiseRange(), color_invert=1.0)
    v = np.array([51, 102, 204], np.float32) / 255
    got = y[:, :, 0, 0]
    flips = np.isclose(got, 1 - v, atol=1e-6) & ~np.isclose(got, v, atol=1e-6)
    assert (flips.sum(1) == 1).all() and np.isclose(got[~flips], np.broadcast_to(v, got.shape)[~flips]).all()
    assert (y == y[:, :, :1, :1]).all()  # flat stays flat
    _, y0 = src.sample(np.random.default_rng(0), 24, 8, tdata.NoiseRange(), color_invert=0.0)
    np.testing.assert_allclose(y0[:, :, 0, 0], np.broadcast_to(v, (24, 3)), atol=1e-6)


def test_bayer_scale_augmentation_adds_shrunk_copies(tmp_path):
    import imageio.v3 as iio

    from pafu_cli.evaluation.resize import imresize

    data = _toy_images(tmp_path)
    files = sorted(data.glob("*.png"))
    plain = tdata.BayerImages.build(files)
    both = tdata.BayerImages.build(files, (1.0, 0.5))
    assert len(plain.images) == 4 and len(both.images) == 8
    for i, f in enumerate(files):
        im = iio.imread(f)
        np.testing.assert_array_equal(both.images[2 * i], im)
        np.testing.assert_array_equal(both.images[2 * i + 1], imresize(im, 0.5))
        assert both.images[2 * i + 1].shape == (32, 32, 3) and both.images[2 * i + 1].dtype == np.uint8


def test_region_recolouring_multiplies_regions_by_their_own_gains():
    flat = np.full((64, 96, 3), 200, np.uint8)
    out = tdata.recolour_regions(flat, 5, cell=24, low=0.2)
    np.testing.assert_array_equal(out, tdata.recolour_regions(flat, 5, cell=24, low=0.2))  # seeded
    assert not np.array_equal(out, tdata.recolour_regions(flat, 6, cell=24, low=0.2))
    g = out.astype(float) / 200
    assert g.min() >= 0.2 - 0.005 and g.max() <= 1.0
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    # inside the regions (most pixels) the gains are one colour per region, its largest channel at 1
    inside = np.isclose(g.max(axis=2), 1.0, atol=0.003)
    assert inside.mean() > 0.6
    assert len({tuple(c) for c in out[inside]}) >= 4 and len(colours) > len({tuple(c) for c in out[inside]})
    # borders are smoothed by [1, 2, 1] / 4: a neighbour step is at most half the jump between gains
    for axis in (0, 1):
        assert np.abs(np.diff(g, axis=axis)).max() <= 0.5 * (g.max() - g.min()) + 0.01
    # texture is scaled, not replaced: the ratio to the input is the same gain field
    tex = np.random.default_rng(1).integers(50, 250, (64, 96, 3)).astype(np.uint8)
    out2 = tdata.recolour_regions(tex, 5, cell=24, low=0.2)
    np.testing.assert_allclose(out2, tex * g, atol=0.51 + 255 * 0.0025)


def test_sampler_recolours_a_share_of_patches_per_region():
    flat = np.full((120, 120, 3), 200, np.uint8)
    src = tdata.BayerImages([flat])
    # every patch recoloured: each one holds several regions with gains in [0.2, 1], the
    # largest channel of each at 1 (inside the regions)
    _, y = src.sample(np.random.default_rng(0), 8, 64, tdata.NoiseRange(), color_regions=1.0)
    g = y / np.float32(200 / 255)
    assert g.min() >= 0.2 - 1e-5 and g.max() <= 1 + 1e-5
    for gp in g.transpose(0, 2, 3, 1):
        inside = np.isclose(gp.max(axis=2), 1.0, atol=1e-4)
        assert len({tuple(np.round(c, 4)) for c in gp[inside]}) >= 2
    # with share 0 the patches stay as they are
    _, y0 = src.sample(np.random.default_rng(0), 8, 64, tdata.NoiseRange(), color_regions=0.0)
    np.testing.assert_allclose(y0, 200 / 255, atol=1e-6)
    # a share of about one half
    _, yh = src.sample(np.random.default_rng(1), 200, 16, tdata.NoiseRange(), color_regions=0.5)
    changed = np.abs(yh - 200 / 255).reshape(200, -1).max(axis=1) > 1e-4
    assert 0.35 < changed.mean() < 0.65


def test_validation_on_recoloured_regions_scores_the_recoloured_pictures(tmp_path):
    import imageio.v3 as iio

    from pafu_cli.training.pafu.loop import TrainConfig, evaluate, train

    data = _toy_images(tmp_path)
    pre = tmp_path / "pre"
    pre.mkdir()
    files = sorted(str(f) for f in data.glob("*.png"))
    for i, f in enumerate(files):  # seeded by the picture's index, as evaluate does
        iio.imwrite(pre / Path(f).name, tdata.recolour_regions(iio.imread(f), i))
    net = _small_demosaick_net()
    regions = evaluate(net, files, TrainConfig(task="demosaick", val_regions=True))
    assert regions == evaluate(net, sorted(str(f) for f in pre.glob("*.png")), TrainConfig(task="demosaick"))
    assert abs(regions - evaluate(net, files, TrainConfig(task="demosaick"))) > 0.01
    # A training run validated on them also records the plain held-out images.
    out = tmp_path / "m.npz"
    cfg = TrainConfig(
        task="demosaick",
        data=(str(data),),
        out=str(out),
        iters=2,
        batch=2,
        patch=12,
        n_kernels=3,
        width=4,
        refit_batches=4,
        selector_pretrain=2,
        kmeans_samples=300,
        val_every=2,
        threads=1,
        val_regions=True,
    )
    summary = train(cfg, command="pafu train test")
    val = load_model(out).quality["validation"]
    trained = PafuNet.from_model(load_model(out))
    held_out = tdata.split_files(tdata.list_images([data]), 2)[1]
    assert val["val_plain"] == pytest.approx(
        evaluate(trained, held_out, TrainConfig(task="demosaick")), abs=1e-3
    )
    assert val["val"] == pytest.approx(summary["val"], abs=1e-3) and abs(val["val"] - val["val_plain"]) > 0.01


def test_passthrough_keeps_known_samples_whatever_the_bank():
    torch.manual_seed(0)
    net = PafuNet("demosaick", 1, n_kernels=4, width=4, passthrough=True)
    net.bank.data.normal_(0, 1)
    cfa = torch.rand(2, 1, 12, 16)
    with torch.no_grad():
        out, _ = net(cfa, mode="argmax")
    torch.testing.assert_close(out[:, 0, 0::2, 0::2], cfa[:, 0, 0::2, 0::2])
    torch.testing.assert_close(out[:, 1, 0::2, 1::2], cfa[:, 0, 0::2, 1::2])
    torch.testing.assert_close(out[:, 1, 1::2, 0::2], cfa[:, 0, 1::2, 0::2])
    torch.testing.assert_close(out[:, 2, 1::2, 1::2], cfa[:, 0, 1::2, 1::2])
    assert not torch.allclose(out[:, 0, 0::2, 1::2], cfa[:, 0, 0::2, 1::2])  # the rest is learned
    # The exported model copies them exactly, and the engine skips their filtering.
    m = net.to_model(name="pt")
    np.testing.assert_array_equal(engine.passthrough_outputs(m), [0, -1, -1, -1, -1, 1, 2, -1, -1, -1, -1, 3])
    with pytest.raises(ValueError, match="demosaick"):
        PafuNet("upscale", 2, passthrough=True)


def test_full_resolution_selector_ablation():
    torch.manual_seed(0)
    net = PafuNet("demosaick", 1, n_kernels=4, width=3, selector_input="full")
    cfa = torch.rand(2, 1, 12, 16)
    logits = net.logits(net.prepare(cfa))
    assert logits.shape == (2, 4, 6, 8)  # one choice per quad
    assert net.selector[0].in_channels == 1 and net.selector[-1].in_channels == 12
    # The selector sees single samples: changing one sample changes its own quad's logits.
    cfa2 = cfa.clone()
    cfa2[0, 0, 5, 7] += 1
    d = (net.logits(net.prepare(cfa2)) - logits).abs().sum(1)[0]
    assert d[2, 3] > 0 and d[0, 0] == 0
    with pytest.raises(ValueError, match="no engine export"):
        net.to_model()
    with pytest.raises(ValueError, match="not available for upscale"):
        PafuNet("upscale", 2, selector_input="full")


def test_sr_pairs_are_matlab_bicubic(shared_data):
    from pafu_cli.evaluation.resize import imresize

    files = sorted((shared_data / "Set5").glob("*.png"))[:2]
    pairs = tdata.SRPairs.build(files, 3)
    for lr, hr in zip(pairs.lr, pairs.hr):
        assert hr.shape[0] % 3 == 0 and lr.shape[0] * 3 == hr.shape[0]
        np.testing.assert_array_equal(lr, imresize(hr, 1 / 3))
    x, y = pairs.sample(np.random.default_rng(0), 4, 10, 3)
    assert x.shape == (4, 3, 10, 10) and y.shape == (4, 3, 30, 30)


def _toy_images(tmp_path):
    """A folder of four 64x64 smooth colour images (for short training runs)."""
    import imageio.v3 as iio

    rng = np.random.default_rng(5)
    data = tmp_path / "imgs"
    data.mkdir()
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(4):
        base = np.stack([np.sin(xx / (3 + i)), np.cos(yy / (4 + i)), np.sin((xx + yy) / 5)], 2)
        img = (127 + 100 * base + rng.normal(0, 5, base.shape)).clip(0, 255).astype(np.uint8)
        iio.imwrite(data / f"im{i}.png", img)
    return data


def test_train_loop_exports_checkpoints_and_resumes(tmp_path):
    from pafu_cli.training.pafu.loop import TrainConfig, train

    data = _toy_images(tmp_path)
    out = tmp_path / "m.npz"
    cfg = TrainConfig(
        task="upscale",
        scale=2,
        data=(str(data),),
        out=str(out),
        iters=4,
        batch=2,
        patch=12,
        n_kernels=4,
        width=4,
        shrink=(1.0,),
        refit_batches=8,
        selector_pretrain=3,
        kmeans_samples=500,
        checkpoint_every=2,
        val_every=4,
        threads=1,
    )
    summary = train(cfg, command="pafu train test")
    m = load_model(out)
    assert m.task == "upscale" and m.scale == 2 and m.n_kernels == 4
    assert m.provenance["command"] == "pafu train test" and m.provenance["seed"] == 0
    assert abs(m.quality["validation"]["val"] - summary["val"]) < 1e-3
    ckpt = tmp_path / "m.ckpt.pt"
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    # Resume: the same config with more steps continues from step 4.
    cfg.iters = 6
    train(cfg, command="pafu train test")
    assert torch.load(ckpt, weights_only=False)["step"] == 6


def test_load_model_is_the_inverse_of_export(tmp_path):
    net = PafuNet("demosaick", 1, n_kernels=5, kernel_sizes=[3, 5, 3, 1, 5], width=6, depth=3)
    _randomise(net, 7)
    with torch.no_grad():
        net.in_mean.fill_(0.25)
    save_model(net.to_model(name="t"), tmp_path / "t.npz")
    other = PafuNet("demosaick", 1, n_kernels=5, kernel_sizes=[3, 5, 3, 1, 5], width=6, depth=3)
    other.load_model(load_model(tmp_path / "t.npz"))
    x = torch.from_numpy(np.random.default_rng(0).random((1, 1, 16, 18), dtype=np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(
            other.logits(other.prepare(x)).numpy(), net.logits(net.prepare(x)).numpy(), atol=1e-6
        )
        np.testing.assert_allclose(other.masked_bank().numpy(), net.masked_bank().numpy(), atol=0)
    # Larger supports start as the model's kernels, zero-padded: the same output.
    wider = PafuNet("demosaick", 1, n_kernels=5, kernel_sizes=[5, 7, 3, 3, 5], width=6, depth=3)
    wider.load_model(load_model(tmp_path / "t.npz"))
    with torch.no_grad():
        np.testing.assert_allclose(
            wider(x, mode="argmax")[0].numpy(), net(x, mode="argmax")[0].numpy(), atol=1e-5
        )
        assert wider.masked_bank()[..., 0].abs().sum() == 0  # zero-padded to 7x7 ...
        assert int(wider.mask[1].sum()) == 49  # ... and kernel 1 may now learn the border
    for wrong in (
        PafuNet("demosaick", 1, 5, [3, 5, 3, 1, 5], width=8),
        PafuNet("demosaick", 1, 5, [3] * 5, width=6),
        PafuNet("upscale", 2, 5, [3, 5, 3, 1, 5], width=6),
    ):
        with pytest.raises(ValueError, match="t.npz: cannot start from it"):
            wrong.load_model(load_model(tmp_path / "t.npz"))


def test_network_from_model_has_its_architecture_and_weights(tmp_path):
    net = PafuNet("upscale", 2, n_kernels=3, kernel_sizes=[3, 5, 3], width=4, depth=2)
    _randomise(net, 3)
    save_model(net.to_model(name="t"), tmp_path / "t.npz")
    m = load_model(tmp_path / "t.npz")
    x = torch.from_numpy(np.random.default_rng(1).random((1, 3, 12, 10), dtype=np.float32))
    same = PafuNet.from_model(m)
    assert same.kernel_sizes.tolist() == [3, 5, 3] and len(same.selector) == 2 and same.scale == 2
    grown = PafuNet.from_model(m, n_kernels=6, kernel_size=5)
    assert grown.kernel_sizes.tolist() == [5] * 6 and grown.selector[-1].out_channels == 6
    with torch.no_grad():
        want = net(x, mode="argmax")[0].numpy()
        np.testing.assert_allclose(same(x, mode="argmax")[0].numpy(), want, atol=1e-6)
        np.testing.assert_allclose(grown(x, mode="argmax")[0].numpy(), want, atol=1e-5)  # copies never win
    with pytest.raises(ValueError, match="4 kernels is not a multiple of its 3"):
        PafuNet.from_model(m, n_kernels=4)


def test_warm_start_continues_from_a_model_and_records_its_command(tmp_path):
    from pafu_cli.training.pafu.loop import TrainConfig, train

    data = _toy_images(tmp_path)
    kw = dict(
        task="upscale",
        scale=2,
        data=(str(data),),
        iters=6,
        batch=2,
        patch=12,
        n_kernels=4,
        width=4,
        shrink=(1.0,),
        refit_batches=8,
        selector_pretrain=3,
        kmeans_samples=500,
        val_every=4,
        threads=1,
    )
    first = TrainConfig(out=str(tmp_path / "a.npz"), **kw)
    train(first, command="pafu train first")
    a = load_model(tmp_path / "a.npz")
    # Zero steps from the first model: the start is the first model itself.
    same = TrainConfig(
        out=str(tmp_path / "b.npz"), init_from=str(tmp_path / "a.npz"), refit=False, **{**kw, "iters": 0}
    )
    train(same, command="pafu train second")
    b = load_model(tmp_path / "b.npz")
    np.testing.assert_array_equal(b.bank, a.bank)
    for wa, wb in zip(a.selector_weights, b.selector_weights):
        np.testing.assert_array_equal(wa, wb)
    chain = b.quality["training"]["init_from"]
    assert chain["command"] == "pafu train first" and chain["file"].endswith("a.npz")
    assert chain["validation"]["val"] == a.quality["validation"]["val"]
    assert abs(b.quality["validation"]["val"] - a.quality["validation"]["val"]) < 1e-3
    # A chain of two warm starts keeps both commands.
    third = TrainConfig(
        out=str(tmp_path / "c3.npz"), init_from=str(tmp_path / "b.npz"), refit=False, **{**kw, "iters": 0}
    )
    train(third, command="pafu train third")
    c3 = load_model(tmp_path / "c3.npz").quality["training"]["init_from"]
    assert c3["command"] == "pafu train second" and c3["init_from"]["command"] == "pafu train first"
    # A mismatched architecture is refused before any step.
    bad = TrainConfig(
        out=str(tmp_path / "c.npz"), init_from=str(tmp_path / "a.npz"), **{**kw, "n_kernels": 6}
    )
    with pytest.raises(ValueError, match="a.npz: cannot start from it"):
        train(bad)
    assert not (tmp_path / "c.npz").exists()


def test_polish_revive_splits_busy_kernels_into_dead_ones_before_each_round(tmp_path, caplog):
    import dataclasses
    import logging

    from pafu_cli.training.pafu.loop import TrainConfig, train

    data = _toy_images(tmp_path)
    kw = dict(
        task="upscale",
        scale=2,
        data=(str(data),),
        iters=6,
        batch=2,
        patch=12,
        n_kernels=4,
        width=4,
        shrink=(1.0,),
        refit_batches=8,
        selector_pretrain=3,
        kmeans_samples=500,
        val_every=4,
        threads=1,
    )
    train(TrainConfig(out=str(tmp_path / "a.npz"), **kw))
    a = load_model(tmp_path / "a.npz")
    biases = list(a.selector_biases)
    biases[-1] = biases[-1].copy()
    biases[-1][2] = -1e3  # kernel 2 is never chosen
    save_model(dataclasses.replace(a, selector_biases=tuple(biases), path=""), tmp_path / "dead.npz")
    polish = {**kw, "iters": 0, "polish_steps": 3, "polish_rounds": 2}
    with caplog.at_level(logging.INFO, logger="pafu.train"):
        train(TrainConfig(out=str(tmp_path / "p.npz"), init_from=str(tmp_path / "dead.npz"), **polish))
        assert ": split" not in caplog.text  # off by default
        caplog.clear()
        train(
            TrainConfig(
                out=str(tmp_path / "r.npz"),
                init_from=str(tmp_path / "dead.npz"),
                polish_revive=True,
                **polish,
            )
        )
    use = [int(v) for v in re.search(r"refit: .*kernel use \[(.*)\]", caplog.text).group(1).split(",")]
    assert use[2] == 0
    split = re.search(r"polish round 1: split (\d+)->(\d+)", caplog.text)
    assert split, caplog.text
    assert use[int(split.group(1))] > 0 and use[int(split.group(2))] == 0  # a busy kernel into a dead one


def test_grown_bank_starts_as_the_model_and_splits_every_kernel(tmp_path):
    import imageio.v3 as iio

    from pafu_cli.training.pafu.loop import Sampler, TrainConfig
    from pafu_cli.training.pafu.refit import grow_bank

    rng = np.random.default_rng(2)
    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(2):
        iio.imwrite(data / f"im{i}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    small = PafuNet("upscale", 2, n_kernels=4, kernel_sizes=[3] * 4, width=4, depth=3)
    _randomise(small, 3)
    save_model(small.to_model(name="small"), tmp_path / "small.npz")
    big = PafuNet("upscale", 2, n_kernels=8, kernel_sizes=[3] * 8, width=4, depth=3)
    assert big.load_model(load_model(tmp_path / "small.npz")) == 4
    x = torch.from_numpy(rng.random((1, 3, 20, 20), dtype=np.float32))
    with torch.no_grad():
        want, _ = small(x, mode="argmax")
        got, sel_big = big(x, mode="argmax")
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)  # the copies are never chosen
    assert int(sel_big[:, 4:].sum()) == 0
    cfg = TrainConfig(task="upscale", scale=2, batch=8, patch=16, shrink=(1.0,))
    sampler = Sampler(cfg, sorted(data.glob("*.png")))
    xb, _ = sampler(np.random.default_rng(1))
    with torch.no_grad():
        before = small(xb, mode="argmax")[1].sum((0, 2, 3))
    pairs = grow_bank(big, sampler, np.random.default_rng(0), 4)
    assert sorted(d for d, _ in pairs) == [4, 5, 6, 7] and sorted(s for _, s in pairs) == [0, 1, 2, 3]
    with torch.no_grad():
        after = big(xb, mode="argmax")[1].sum((0, 2, 3))
    assert int(after.sum()) == int(before.sum())
    busy = [(d, s) for d, s in pairs if before[s] >= 100]
    assert busy
    for d, s in busy:  # each split original shares its pixels with its copy
        assert after[d] > 0 and after[s] > 0 and after[d] + after[s] >= 0.5 * before[s], (before, after, d, s)


@pytest.mark.parametrize("task,scale", [("upscale", 2), ("demosaick", 1)])
def test_exported_top2_model_matches_torch_inference(tmp_path, task, scale):
    net = PafuNet(task, scale, n_kernels=6, kernel_sizes=[5, 3, 5, 1, 3, 5], width=8, depth=3, mix=2)
    _randomise(net, 2)
    save_model(net.to_model(name="t"), tmp_path / "t.npz")
    m = load_model(tmp_path / "t.npz")
    assert m.mix == 2 and PafuNet.from_model(m).mix == 2
    rng = np.random.default_rng(4)
    x = rng.random((1, 3, 19, 22) if task == "upscale" else (1, 1, 20, 26), dtype=np.float32)
    eng_in = x[0].transpose(1, 2, 0) if task == "upscale" else to_packed_rggb(x[0, 0], "RGGB", 0)[0]
    with torch.no_grad():
        want, sel = net(torch.from_numpy(x), mode="infer")
        argmax, _ = net(torch.from_numpy(x), mode="argmax")
        logits = net.logits(net.prepare(torch.from_numpy(x)))[0].numpy().transpose(1, 2, 0)
    assert torch.allclose(sel.sum(1), torch.ones(1)) and int((sel > 0).sum(1).max()) == 2
    out, idx = engine.run(m, eng_in)
    top3 = np.sort(logits, axis=2)[..., -3:]
    clear = (np.diff(top3, axis=2) > 1e-4).all(2)
    assert clear.mean() > 0.95
    s = m.shuffle
    ok = np.repeat(np.repeat(clear, s, 0), s, 1)
    want = want[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out[ok], want[ok], atol=1e-4)
    assert np.abs(want - argmax[0].numpy().transpose(1, 2, 0)).max() > 1e-2


def test_mixed_refit_recovers_the_bank_and_polish_lowers_the_blend_loss():
    from pafu_cli.training.pafu.refit import polish_mixed, refit_bank_mixed

    torch.manual_seed(0)
    teacher = PafuNet("upscale", 2, n_kernels=4, kernel_sizes=[3, 1, 3, 3], width=6, depth=2, mix=2)
    _randomise(teacher, 5)

    def sampler(rng):
        x = torch.from_numpy(rng.random((4, 3, 14, 14), dtype=np.float32))
        with torch.no_grad():
            return x, teacher(x, mode="infer")[0]

    student = PafuNet("upscale", 2, n_kernels=4, kernel_sizes=[3, 1, 3, 3], width=6, depth=2, mix=2)
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        student.bank.add_(torch.randn(student.bank.shape) * 0.3).mul_(student.mask)

    def blend_mse(net):
        xs, ys = sampler(np.random.default_rng(99))
        with torch.no_grad():
            return float(((net(xs, mode="infer")[0] - ys) ** 2).mean())

    before = blend_mse(student)
    # The teacher's choices and weights: the blend is linear in the bank, and the joint
    # least-squares fit finds the teacher's bank (cross terms included).
    counts = refit_bank_mixed(student, sampler, np.random.default_rng(2), 8, ridge=1e-9)
    assert sum(counts) == 8 * 4 * 12 * 12  # every pixel inside the 1-pixel margin
    np.testing.assert_allclose(student.bank.detach().numpy(), teacher.bank.detach().numpy(), atol=1e-3)
    assert blend_mse(student) < 1e-6 * before
    with torch.no_grad():
        student.bank.add_(torch.randn(student.bank.shape) * 0.3).mul_(student.mask)
    before = blend_mse(student)
    polish_mixed(student, sampler, np.random.default_rng(1), 60, 1e-3, 1e-2)
    assert blend_mse(student) < 0.5 * before


def test_polish_teaches_the_selector_the_kernel_of_least_error():
    from pafu_cli.training.pafu.refit import polish_selector

    torch.manual_seed(0)
    net = PafuNet("upscale", 2, n_kernels=2, kernel_sizes=[1, 1], width=4, depth=2)
    with torch.no_grad():
        net.bank.zero_()
        for o in range(12):  # kernel 0 copies the pixel's colour, kernel 1 halves it
            net.bank[0, o, o // 4, 0, 0] = 1.0
            net.bank[1, o, o // 4, 0, 0] = 0.5

    def truth(x):  # bright pixels (red above 0.5) want kernel 0, dark ones kernel 1
        bright = (x[:, :1] > 0.5).float()
        y = x * bright + 0.5 * x * (1 - bright)
        return F.interpolate(y, scale_factor=2, mode="nearest"), bright[:, 0]

    def sampler(rng):
        x = torch.from_numpy(rng.random((8, 3, 12, 12), dtype=np.float32))
        return x, truth(x)[0]

    x = torch.from_numpy(np.random.default_rng(9).random((4, 3, 16, 16), dtype=np.float32))
    want = 1 - truth(x)[1]  # kernel index of least error

    def accuracy():
        with torch.no_grad():
            return float((net.logits(x).argmax(1) == want).float().mean())

    before = accuracy()
    loss = polish_selector(net, sampler, np.random.default_rng(1), 400, 0.02)
    assert accuracy() > 0.97 > before + 0.2
    xs, ys = sampler(np.random.default_rng(2))
    with torch.no_grad():  # the expected loss of the best single kernel, for scale
        err = ((net.responses(xs) - F.pixel_unshuffle(ys, 2).unsqueeze(1)) ** 2).sum(2)
    assert 0 <= loss < 0.25 * float(err.mean((0, 2, 3)).min())


def test_revive_splits_a_busy_kernel_into_a_dead_one():
    from pafu_cli.training.pafu.refit import revive_dead_kernels

    torch.manual_seed(0)
    net = PafuNet("upscale", 2, n_kernels=4, kernel_sizes=[3] * 4, width=8, depth=3)
    _randomise(net, 3)
    last = net.selector[-1]
    with torch.no_grad():  # kernel 1 never wins; kernel 0 wins most pixels
        last.bias[1] = -1e3
        last.bias[0] = 5.0
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")

    def sampler(_rng):  # smooth random images: (low-res, high-res) pairs
        hr = (
            torch.stack(
                [
                    torch.sin(xx / (2 + 4 * torch.rand(1, generator=g)) + torch.rand(1, generator=g) * 6)
                    * torch.cos(yy / (2 + 4 * torch.rand(1, generator=g)))
                    for _ in range(6)
                ]
            )[:, None].repeat(1, 3, 1, 1)
            * 0.4
            + 0.5
        )
        return torch.nn.functional.avg_pool2d(hr, 2), hr

    with torch.no_grad():
        before = net.logits(net.prepare(sampler(rng)[0])).argmax(1)
    counts = np.bincount(before.reshape(-1).numpy(), minlength=4)
    assert counts[1] == 0 and counts[0] > 0.5 * counts.sum()
    w0 = last.weight[0, :, 0, 0].detach().clone()
    pairs = revive_dead_kernels(net, sampler, rng, counts, min_share=0.01, refit_batches=4)
    assert (1, 0) in pairs
    # The two rows moved apart symmetrically from the source's row ...
    np.testing.assert_allclose(
        (last.weight[0, :, 0, 0] + last.weight[1, :, 0, 0]).detach() / 2, w0, atol=1e-5
    )
    with torch.no_grad():
        after = net.logits(net.prepare(sampler(rng)[0])).argmax(1).reshape(-1).numpy()
    share = np.mean(after == 1) / max(np.mean((after == 0) | (after == 1)), 1e-9)
    assert 0.15 < share < 0.85  # ... and split the source's pixels into two real parts
    assert not torch.equal(net.bank[0], net.bank[1])  # each refitted on its own pixels


def test_balance_loss_pushes_pixels_off_the_busiest_kernel():
    from pafu_cli.training.pafu.loop import balance_loss

    torch.manual_seed(0)
    net = PafuNet("upscale", 2, n_kernels=4, kernel_sizes=[3] * 4, width=8, depth=3)
    _randomise(net, 3)
    with torch.no_grad():
        net.selector[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0, -3.0]))
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    _, sel = net(x, tau=1.0, mode="gumbel")
    share = sel.detach().mean((0, 2, 3)).numpy()
    loss = balance_loss(sel)
    assert abs(loss.item() - 4 * float((share**2).sum())) < 1e-5 and loss.item() > 1.0
    loss.backward()
    g = net.selector[-1].bias.grad.numpy()
    busiest = int(np.argmax(share))
    assert g[busiest] > 0 and g[busiest] == g.max()  # descending lowers the busiest logit
    # Equal shares: the minimum, 1.
    even = torch.zeros(1, 4, 2, 2)
    even[0, 0, 0, 0] = even[0, 1, 0, 1] = even[0, 2, 1, 0] = even[0, 3, 1, 1] = 1
    assert abs(balance_loss(even).item() - 1.0) < 1e-6


def test_train_command_passes_its_options_to_the_config(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pafu_cli.cli.main import main
    from pafu_cli.training.pafu import loop

    seen = {}

    def fake_train(cfg, command=""):
        seen["cfg"] = cfg
        return {"out": "", "val": 1.0}

    monkeypatch.setattr(loop, "train", fake_train)
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--task",
            "demosaick",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m.npz"),
            "--kernels",
            "4",
            "--kernel-sizes",
            "3",
            "--val-sigma",
            "10",
            "--val-saturation",
            "2",
            "--refit-batches",
            "700",
            "--color-aug",
            "0.75",
            "--color-sat",
            "4",
            "--mix",
            "2",
            "--color-invert",
            "0.1",
            "--color-regions",
            "0.2",
            "--val-regions",
            "--shrink",
            "1,0.7,0.5",
        ],
    )
    assert r.exit_code == 0, r.output
    cfg = seen["cfg"]
    assert (
        cfg.mix == 2
        and cfg.color_invert == 0.1
        and cfg.color_regions == 0.2
        and cfg.val_regions
        and cfg.bayer_shrink == (1.0, 0.7, 0.5)
    )
    assert (cfg.val_saturation, cfg.refit_batches, cfg.color_aug, cfg.color_sat) == (2.0, 700, 0.75, 4.0)
    assert cfg.kernel_sizes == (3, 3, 3, 3) and cfg.val_sigma == pytest.approx(10 / 255)
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--task",
            "demosaick",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m.npz"),
            "--refit-batches",
            "0",
        ],
    )
    assert r.exit_code == 2 and "--refit-batches" in r.output
    for bad in ("0", "1,1.5", "a"):
        r = CliRunner().invoke(
            main,
            [
                "train",
                "--task",
                "demosaick",
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path / "m.npz"),
                "--shrink",
                bad,
            ],
        )
        assert r.exit_code == 2 and "--shrink" in r.output and "Traceback" not in r.output


def test_every_train_option_is_a_config_field(tmp_path, monkeypatch):
    """``pafu train`` fills TrainConfig by field name: each option (or each value
    of a two-value option) is a field, and the converted values arrive."""
    import dataclasses

    from click.testing import CliRunner

    from pafu_cli.cli.main import main
    from pafu_cli.cli.train import _PAIRS, GUIDED_ONLY, train_cmd
    from pafu_cli.training.pafu import loop

    fields = {f.name for f in dataclasses.fields(loop.TrainConfig)}
    for param in train_cmd.params:
        if param.name not in GUIDED_ONLY:
            assert set(_PAIRS.get(param.name, (param.name,))) <= fields, param.name
    configs = []

    def fake_train(cfg, command=""):
        configs.append(cfg)
        return {"out": "", "val": 1.0}

    monkeypatch.setattr(loop, "train", fake_train)
    args = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.npz")]
    demosaick = ["--task", "demosaick", "-s", "3", "--tau", "2", "0.5", "--noise", "0.1", "0.2"]
    r = CliRunner().invoke(main, args + demosaick)
    assert r.exit_code == 0, r.output
    cfg = configs[-1]
    assert (cfg.task, cfg.scale, cfg.tau0, cfg.tau1, cfg.noise_a, cfg.noise_sigma) == (
        "demosaick",
        1,
        2,
        0.5,
        0.1,
        0.2,
    )
    assert cfg.bayer_shrink == (1.0,) and cfg.shrink == loop.TrainConfig.shrink  # --shrink is Bayer's
    assert (cfg.init_from, cfg.mix, cfg.val_sigma, cfg.noise_sigma_min, cfg.kernel_sizes) == ("", 1, 0, 0, ())
    assert cfg.data == (str(tmp_path),)
    r = CliRunner().invoke(main, args + ["--task", "upscale", "-s", "3", "--noise-min", "0.01"])
    assert r.exit_code == 0 and (configs[-1].scale, configs[-1].noise_sigma_min) == (3, 0.01)
    r = CliRunner().invoke(main, args + ["--task", "upscale", "-s", "1"])
    assert r.exit_code == 2 and "upscale needs 2, 3 or 4" in r.output and len(configs) == 2


@pytest.fixture
def guided_train_cli(tmp_path, monkeypatch):
    """(invoke(extra args) -> result, the keywords the last run gave ``train``):
    ``pafu train --task guided_upsample`` with the training replaced by a stop."""
    from click.testing import CliRunner

    from pafu_cli.cli.main import main
    from pafu_cli.training.pac import guided

    seen = {}

    def fake_train(folders, out, **kw):
        seen.clear()
        seen.update(kw)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(guided, "train", fake_train)
    args = ["train", "--task", "guided_upsample", "--data", str(tmp_path), "--out", str(tmp_path / "g.npz")]
    return (lambda extra=(): CliRunner().invoke(main, args + list(extra))), seen


def test_guided_train_command_passes_widths_and_refuses_bad_ones(tmp_path, guided_train_cli):
    invoke, seen = guided_train_cli
    r = invoke(["--widths", "12,6,48", "--pool", "7"])
    assert r.exit_code == 1 and "stopped by the test" in r.output
    assert seen["widths"] == (12, 6, 48) and seen["pool"] == 7
    invoke()
    assert seen["widths"] == (8, 4, 24)
    for bad in ("12,6", "0,4,24", "a,b,c"):
        r = invoke(["--widths", bad])
        assert r.exit_code == 2 and "--widths" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "g.npz").exists()


def test_guided_train_init_from_passes_the_model_and_refuses_others(tmp_path, guided_train_cli):
    from pafu_cli.models import models_dir

    invoke, seen = guided_train_cli
    r = invoke(["--init-from", str(models_dir() / "guided_upsample.npz")])
    assert r.exit_code == 1 and "stopped by the test" in r.output
    assert seen["init"].task == "guided_upsample" and seen["init"].scales == (4, 8, 16)
    assert seen["lr"] == 2e-3
    r = invoke(["--lr", "5e-4"])
    assert r.exit_code == 1 and seen["lr"] == 5e-4 and seen["init"] is None
    r = invoke(["--lr", "0"])
    assert r.exit_code == 2 and "--lr" in r.output
    r = invoke(["--init-from", str(models_dir() / "upscale_x2.npz")])
    assert r.exit_code == 2 and "not a guided_upsample model" in r.output and "Traceback" not in r.output
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    r = invoke(["--init-from", str(tmp_path / "junk.npz")])
    assert r.exit_code == 1 and "junk.npz" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "g.npz").exists()


def test_features_grow_a_linear_model_and_training_goes_on(tmp_path):
    """--features 3 --width 6 from a linear model: zero steps export a pafunet model
    whose output is the linear model's; a few steps move the feature bank, and
    --init-from that model goes on without --features."""
    from pafu_cli.filters.pafu.model import PafuNetModel
    from pafu_cli.training.pafu.loop import TrainConfig, train

    data = _toy_images(tmp_path)
    kw = dict(
        task="upscale",
        scale=2,
        data=(str(data),),
        iters=6,
        batch=2,
        patch=12,
        n_kernels=4,
        width=4,
        shrink=(1.0,),
        refit_batches=8,
        selector_pretrain=3,
        kmeans_samples=500,
        val_every=4,
        threads=1,
        mix=2,
    )
    train(TrainConfig(out=str(tmp_path / "lin.npz"), **kw))
    lin = load_model(tmp_path / "lin.npz")
    grow = dict(kw, init_from=str(tmp_path / "lin.npz"), features=3, width=6, lr_features=1e-2)
    train(TrainConfig(out=str(tmp_path / "g0.npz"), **{**grow, "iters": 0}))
    g0 = load_model(tmp_path / "g0.npz")
    assert isinstance(g0, PafuNetModel) and g0.feature_bank.shape == (4, 12, 6, 3, 3)
    assert not g0.feature_bank.any() and g0.selector_weights[1].shape == (6, 6, 3, 3)
    x = np.random.default_rng(0).random((20, 22, 3), dtype=np.float32)
    np.testing.assert_allclose(engine.run(g0, x)[0], engine.run(lin, x)[0], atol=1e-5)
    train(TrainConfig(out=str(tmp_path / "g.npz"), **{**grow, "iters": 30}))
    g = load_model(tmp_path / "g.npz")
    assert np.abs(g.feature_bank).max() > 1e-3
    assert g.quality["training"]["features"] == {"size": 3, "width": 6}
    more = {**kw, "init_from": str(tmp_path / "g.npz"), "iters": 0}
    train(TrainConfig(out=str(tmp_path / "h.npz"), **more))
    h = load_model(tmp_path / "h.npz")
    np.testing.assert_array_equal(h.feature_bank, g.feature_bank)

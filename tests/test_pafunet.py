"""The ``pafunet`` family: a PAFU model whose kernels also read the selector's last
hidden layer (a small non-linear network ending in a PAFU unit). The engine
against the plain-NumPy reference, band and thread invariance, the file format,
and the PyTorch network it is trained as (growth from a linear model keeps its
output; the export runs the same in the engine)."""

import dataclasses

import numba
import numpy as np
import pytest
import reference as ref
from conftest import ATOL, random_model

from pafu_cli.cfa import to_packed_rggb
from pafu_cli.errors import ModelError
from pafu_cli.filters.pafu import engine
from pafu_cli.filters.pafu.model import PafuNetModel, receptive_margin, with_features
from pafu_cli.models.format import load_model, save_model


def _net_model(rng, task="upscale", scale=2, kf=3, mix=1, kernel_sizes=(5, 3, 5, 1, 3)):
    m = random_model(rng, task=task, scale=scale, kernel_sizes=kernel_sizes)
    m = dataclasses.replace(m, mix=mix)
    ch = m.selector_weights[-2].shape[0]
    fb = rng.normal(0, 0.2, (m.n_kernels, m.out_channels, ch, kf, kf)).astype(np.float32)
    return with_features(m, fb)


def _scale_of(x):
    return max(1.0, float(np.abs(x).max()))


@pytest.mark.parametrize("kf", [1, 3, 5])
@pytest.mark.parametrize("mix", [1, 2])
@pytest.mark.parametrize("shape", [(3, 30), (17, 9), (40, 33)])
def test_engine_matches_the_reference(rng, kf, mix, shape):
    m = _net_model(rng, scale=3, kf=kf, mix=mix)
    x = rng.random(shape + (3,), dtype=np.float32)
    out, idx = engine.run(m, x, band=7)
    want, idx_ref, logits = ref.run(m, x)
    top2 = np.sort(logits, axis=2)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-4
    np.testing.assert_array_equal(idx[clear], idx_ref[clear])
    # Pixels whose two best logits are nearly tied may choose either: compare the rest.
    ok = np.repeat(np.repeat(clear, 3, 0), 3, 1)
    np.testing.assert_allclose(out[ok], want[ok], atol=ATOL * _scale_of(want), rtol=1e-5)


def test_feature_taps_matter(rng):
    """The feature bank is applied: zeroing it changes the output by what the
    reference says its share is."""
    m = _net_model(rng)
    x = rng.random((20, 24, 3), dtype=np.float32)
    lin = dataclasses.replace(m, feature_bank=np.zeros_like(m.feature_bank))
    a, _ = engine.run(m, x)
    b, _ = engine.run(lin, x)
    want_a, _, _ = ref.run(m, x)
    want_b, _, _ = ref.run(lin, x)
    assert np.abs(want_a - want_b).mean() > 0.05
    np.testing.assert_allclose(a - b, want_a - want_b, atol=1e-4 * _scale_of(want_a))


def test_bands_and_threads_give_the_same_bits(rng):
    m = _net_model(rng, scale=2, kf=3, mix=2)
    x = rng.random((61, 47, 3), dtype=np.float32)
    first, idx = engine.run(m, x, band=16)
    for band in (1, 5, 64):
        out, i2 = engine.run(m, x, band=band)
        np.testing.assert_array_equal(out, first)
        np.testing.assert_array_equal(i2, idx)
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        out, _ = engine.run(m, x, band=16)
    finally:
        numba.set_num_threads(n)
    np.testing.assert_array_equal(out, first)


def test_windows_are_crops_of_the_whole(rng):
    m = _net_model(rng, scale=2)
    x = rng.random((30, 26, 3), dtype=np.float32)
    whole, _ = engine.run(m, x)
    part, _ = engine.run(m, x, out_shape=(13, 17), offset=(21, 9))
    np.testing.assert_array_equal(part, whole[21:34, 9:26])


def test_mosaic_input_matches_the_packed_reference(rng):
    m = _net_model(rng, task="demosaick", kf=3)
    cfa = rng.random((26, 34), dtype=np.float32)
    out, _ = engine.run_mosaic(m, cfa, "GBRG", pad=4)
    packed, (top, left) = to_packed_rggb(cfa, "GBRG", 4)
    full, idx = engine.run(m, packed)
    np.testing.assert_array_equal(out, full[top : top + 26, left : left + 34])
    want, idx_ref, _ = ref.run(m, packed)
    assert (idx == idx_ref).mean() > 0.98


def test_receptive_margin_counts_the_feature_taps(rng):
    m = _net_model(rng, kf=3, kernel_sizes=(3, 1))  # selector 3x3, 3x3, 1x1; features 3x3 on layer 2
    assert receptive_margin(m) == 3
    # and the engine's output really changes 3 pixels away, not 4
    x = rng.random((21, 21, 3), dtype=np.float32)
    a, _ = engine.run(m, x)
    x2 = x.copy()
    x2[10, 10] += 0.5
    b, _ = engine.run(m, x2)
    changed = np.argwhere(np.abs(a - b).max(axis=2) > 0) // 2
    assert np.abs(changed - 10).max() == 3


def test_feature_kernels_must_fit_the_bank(rng):
    m = random_model(rng, kernel_sizes=(3, 1))
    with pytest.raises(ValueError, match="exceed the bank's 3x3"):
        with_features(m, np.zeros((2, 12, 8, 5, 5), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        with_features(m, np.zeros((2, 12, 7, 3, 3), np.float32))


def test_file_round_trip(rng, tmp_path):
    m = _net_model(rng, mix=2)
    p = tmp_path / "net.npz"
    save_model(m, p)
    back = load_model(p)
    assert isinstance(back, PafuNetModel) and back.family == "pafunet" and back.mix == 2
    np.testing.assert_array_equal(back.feature_bank, m.feature_bank)
    np.testing.assert_array_equal(back.bank, m.bank)
    x = rng.random((12, 14, 3), dtype=np.float32)
    np.testing.assert_array_equal(engine.run(back, x)[0], engine.run(m, x)[0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("feature_bank"), "missing key feature_bank"),
        (lambda a: a.update(feature_bank=a["feature_bank"][:, :, :3]), "feature_bank has shape"),
        (lambda a: a.update(feature_bank=np.zeros((5, 12, 8, 2, 2), np.float32)), "feature_bank has shape"),
        (lambda a: a.update(feature_bank=np.zeros((5, 12, 8, 7, 7), np.float32)), "at most the bank's 5"),
    ],
)
def test_bad_feature_banks_are_one_line_errors(rng, tmp_path, change, message):
    m = _net_model(rng)
    p = tmp_path / "net.npz"
    save_model(m, p)
    arrays = dict(np.load(p, allow_pickle=False))
    change(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelError, match=message) as e:
        load_model(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)


def test_dask_chunks_give_the_whole_image_bits(rng):
    """The Dask array path cuts chunks with the model's receptive margin, which
    counts the feature taps: the same bits as the whole image."""
    da = pytest.importorskip("dask.array")
    import pafu_cli
    import pafu_cli.dask as pdask

    m = _net_model(rng, scale=2, kf=5, mix=2)  # reach 4: 2 selector layers, then 2 feature taps
    x = rng.random((150, 140, 3), dtype=np.float32)
    lazy = pdask.upscale(da.from_array(x, chunks=(48, 48, 3)), 2, model=m)
    np.testing.assert_array_equal(lazy.compute(), pafu_cli.upscale(x, 2, model=m))


torch = pytest.importorskip("torch")


def _linear_model(rng):
    return dataclasses.replace(random_model(rng, scale=2, kernel_sizes=(5, 5, 3, 3)), mix=2)


def test_growing_a_linear_model_keeps_its_output(rng):
    """--features with a wider --width starts at the linear model's output exactly:
    the feature bank is zero and the new channels feed nothing."""
    from pafu_cli.training.pafu.module import PafuNet

    lin = _linear_model(rng)
    net = PafuNet.from_model(lin, features=3, width=12)
    assert net.fbank.shape == (4, 12, 12, 3, 3)
    x = rng.random((1, 3, 19, 23), dtype=np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x), mode="infer")[0][0].numpy().transpose(1, 2, 0)
    want, _ = engine.run(lin, x[0].transpose(1, 2, 0))
    np.testing.assert_allclose(y, want, atol=1e-5)


def test_trained_network_runs_the_same_in_the_engine(rng):
    """A network with a trained (here: random) feature bank and trunk, exported,
    gives the engine's output; saved and loaded, it still does."""
    from pafu_cli.training.pafu.module import PafuNet

    net = PafuNet.from_model(_linear_model(rng), features=3, width=12)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        net.fbank.normal_(0, 0.05, generator=gen)
        for conv in net.selector:
            conv.weight.add_(torch.randn(conv.weight.shape, generator=gen) * 0.1)
    x = rng.random((1, 3, 25, 18), dtype=np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x), mode="infer")[0][0].numpy().transpose(1, 2, 0)
    m = net.to_model(name="t")
    assert isinstance(m, PafuNetModel) and m.feature_bank.shape == (4, 12, 12, 3, 3)
    out, _ = engine.run(m, x[0].transpose(1, 2, 0))
    np.testing.assert_allclose(out, y, atol=2e-5 * _scale_of(y))
    linear = dataclasses.replace(m, feature_bank=0 * m.feature_bank)
    assert np.abs(out - engine.run(linear, x[0].transpose(1, 2, 0))[0]).mean() > 1e-3

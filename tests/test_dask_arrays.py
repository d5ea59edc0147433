"""``pafu_cli.dask``: filters on dask arrays equal the whole-array results exactly,
whatever the chunking (odd sizes, chunks shorter than a model's reach, chunk
borders on every Bayer phase), stay lazy, and refuse what they cannot chunk."""

from __future__ import annotations

import numpy as np
import pytest

import pafu_cli
from pafu_cli import dask as pdask

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def _equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a, b, equal_nan=True), float(np.nanmax(np.abs(a - b)))


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_of_4000x3000_in_512_chunks_equals_the_whole(scale):
    rng = np.random.default_rng(scale)
    img = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    lazy = pdask.upscale(da.from_array(img, chunks=(512, 512, 3)), scale)
    assert lazy.numblocks[:2] == (6, 8)
    want = pafu_cli.upscale(img, scale)
    r0 = 0
    for i in range(lazy.numblocks[0]):  # one row of chunks at a time
        got = lazy.blocks[i].compute()
        _equal(got, want[r0 : r0 + got.shape[0]])
        r0 += got.shape[0]
    assert r0 == want.shape[0]


@pytest.mark.parametrize(
    "scale, chunks, model",
    [
        (2, (77, 101, 3), None),
        (3, (64, 33, 3), None),
        (4, (13, 300, 3), None),
        (2, (50, 50, 3), "upscale_x2_fast"),
        (2, (41, 59), None),  # grey
    ],
)
def test_upscale_any_chunking_equals_the_whole(scale, chunks, model):
    rng = np.random.default_rng(7)
    shape = (203, 310, 3) if len(chunks) == 3 else (203, 310)
    img = rng.random(shape).astype(np.float32)
    want = pafu_cli.upscale(img, scale, model=model)
    _equal(pdask.upscale(da.from_array(img, chunks=chunks), scale, model).compute(), want)


def test_upscale_chunks_option_and_plain_arrays():
    img = np.random.default_rng(1).random((90, 130, 3)).astype(np.float32)
    got = pdask.upscale(img, 2, chunks=40)
    assert got.numblocks[0] >= 2
    _equal(got.compute(), pafu_cli.upscale(img, 2))


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_demosaick_of_4000x3000_in_512_chunks_equals_the_whole(pattern):
    rng = np.random.default_rng(3)
    cfa = rng.integers(0, 65536, (3000, 4000), dtype=np.uint16)
    lazy = pdask.demosaick(da.from_array(cfa, chunks=512), pattern)
    assert lazy.numblocks[:2] == (6, 8)
    _equal(lazy.compute(), pafu_cli.demosaick(cfa, pattern))


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
@pytest.mark.parametrize("chunks", [(61, 83), (64, 64), (33, 200)])
def test_demosaick_chunk_borders_on_every_phase(pattern, chunks):
    """Chunks of odd and even sizes put chunk borders on both phases of both axes."""
    cfa = np.random.default_rng(5).random((211, 257)).astype(np.float32)
    want = pafu_cli.demosaick(cfa, pattern)
    _equal(pdask.demosaick(da.from_array(cfa, chunks=chunks), pattern).compute(), want)
    noisy = pdask.demosaick(da.from_array(cfa, chunks=chunks), pattern, "demosaick_denoise_s10").compute()
    _equal(noisy, pafu_cli.demosaick(cfa, pattern, "demosaick_denoise_s10"))


@pytest.mark.slow  # 12 chunked graphs (about 30 s cold with the next test): run by .ci/run's slow step
@pytest.mark.parametrize("s", [2, 4, 8])
@pytest.mark.parametrize("method", ["jbu", "bicubic", "bilinear", "guided_upsample"])
def test_guided_upsample_equals_the_whole_with_holes(s, method):
    if method == "guided_upsample" and s == 2:
        pytest.skip("the learned model has no x2")
    rng = np.random.default_rng(s)
    h, w = 53, 71
    lr = rng.uniform(10, 200, (h, w)).astype(np.float32)
    lr[rng.random((h, w)) < 0.05] = np.nan
    guide = rng.integers(0, 256, (h * s, w * s, 3), dtype=np.uint8)
    want = pafu_cli.guided_upsample(lr, guide, method=method)
    got = pdask.guided_upsample(da.from_array(lr, chunks=(17, 23)), guide, method=method).compute()
    _equal(got, want)


@pytest.mark.slow
def test_guided_upsample_flow_mask_and_float_guide():
    rng = np.random.default_rng(11)
    h, w, s = 40, 50, 4
    flow = rng.normal(0, 3, (h, w, 2)).astype(np.float32)
    mask = (rng.random((h, w)) > 0.1).astype(np.float32)
    guide = rng.random((h * s, w * s)).astype(np.float32)
    for method in ("jbu", "guided_upsample"):
        want = pafu_cli.guided_upsample(flow, guide, method=method, mask=mask)
        got = pdask.guided_upsample(flow, guide, method=method, mask=mask, chunks=16).compute()
        _equal(got, want)


def test_graphs_are_lazy_and_hold_the_model_once():
    import pickle

    from pafu_cli.models.registry import resolve_model

    calls = []

    def reader(block):
        calls.append(1)
        return block

    def graph_bytes(chunk):
        x = da.zeros((1200, 1200, 3), np.float32, chunks=(chunk, chunk, 3))
        return len(pickle.dumps(dict(pdask.upscale(x, 2).__dask_graph__())))

    x = da.from_array(np.zeros((600, 600, 3), np.float32), chunks=(100, 100, 3))
    x = x.map_blocks(reader, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
    y = pdask.upscale(x, 2)
    assert not calls  # nothing read yet
    y[:200, :200].compute()
    assert 0 < len(calls) < 36  # only the chunks the corner needs
    # 144 chunks instead of 36: the graph grows by far less than 108 copies of the model.
    model = len(pickle.dumps(resolve_model(None, "upscale", 2)))
    assert graph_bytes(100) - graph_bytes(200) < model


def test_quantise_rounds_like_written_files():
    from pafu_cli.jobs.output import to_bits

    x = np.linspace(-0.1, 1.1, 1000, dtype=np.float32).reshape(20, 50)
    for bits in (8, 16):
        _equal(pdask.quantise(da.from_array(x, chunks=7), bits).compute(), to_bits(x, bits))
    with pytest.raises(ValueError, match="bits"):
        pdask.quantise(da.from_array(x), 12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pdask.upscale(np.zeros((8, 8, 3)), 5), "scale must be 2, 3 or 4"),
        (lambda: pdask.upscale(np.zeros((8, 8, 4)), 2), r"\(H, W, 3\) or \(H, W\)"),
        (lambda: pdask.upscale(np.zeros((0, 8, 3)), 2), "empty"),
        (lambda: pdask.demosaick(np.zeros((8, 8, 3)), "RGGB"), "2-D"),
        (lambda: pdask.demosaick(np.zeros((8, 8)), "RGBG"), "not supported"),
        (lambda: pdask.guided_upsample(np.zeros((8, 8)), np.zeros((20, 24, 3))), "integer multiple"),
        (
            lambda: pdask.guided_upsample(np.zeros((8, 8)), np.zeros((16, 16, 3)), method="guided_upsample"),
            "not 2",
        ),
        (lambda: pdask.guided_upsample(np.zeros((8, 8)), np.zeros((32, 32)), mask=np.ones((4, 4))), "mask"),
        (lambda: pdask.guided_upsample(np.zeros((8, 8)), np.zeros((16, 16))), "method='jbu'"),
    ],
)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_two_filters_in_one_graph_keep_their_own_keys():
    x = da.from_array(np.random.default_rng(2).random((60, 80, 3)).astype(np.float32), chunks=30)
    a, b = pdask.upscale(x, 2), pdask.upscale(x * 0.5, 2)
    got_a, got_b = dask.compute(a, b)
    _equal(got_a, pafu_cli.upscale(x.compute(), 2))
    _equal(got_b, pafu_cli.upscale(x.compute() * 0.5, 2))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    import tifffile

    from pafu_cli.io.images import write_image

    d = tmp_path_factory.mktemp("chunks")
    rng = np.random.default_rng(4)
    write_image(d / "rgb8.png", rng.integers(0, 256, (150, 210, 3), dtype=np.uint8))
    write_image(d / "rgba16.png", rng.integers(0, 65536, (150, 210, 4), dtype=np.uint16))
    write_image(d / "grey.png", rng.integers(0, 256, (150, 211), dtype=np.uint8))
    big = rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)
    tifffile.imwrite(d / "strips.tif", big, rowsperstrip=32, compression="zlib", photometric="rgb")
    tifffile.imwrite(d / "tiles.tif", big[:, :, 0], tile=(64, 64))
    tifffile.imwrite(d / "float.tif", rng.random((100, 130, 3)).astype(np.float32), photometric="rgb")
    return d


@pytest.mark.parametrize(
    "name", ["rgb8.png", "rgba16.png", "grey.png", "strips.tif", "tiles.tif", "float.tif"]
)
def test_upscale_chunks_option_writes_the_same_pixels(images, tmp_path, name):
    from click.testing import CliRunner

    from pafu_cli.cli.main import main
    from pafu_cli.io.images import read_image

    src, ext = images / name, name.rsplit(".", 1)[1]
    for s in (2, 3):
        a, b = tmp_path / f"a{s}.{ext}", tmp_path / f"b{s}.{ext}"
        assert CliRunner().invoke(main, ["upscale", "-s", str(s), str(src), str(a)]).exit_code == 0
        r = CliRunner().invoke(main, ["upscale", "-s", str(s), "--chunks", "64", str(src), str(b)])
        assert r.exit_code == 0, r.output
        _equal(read_image(b), read_image(a))
        if ext == "tif":
            assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_upscale_chunks_reads_a_tiff_past_the_pixel_limit(images, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pafu_cli.cli.main import main

    monkeypatch.setenv("PAFU_MAX_PIXELS", "50000")  # the 300 x 410 TIFF declares 123 000
    whole = CliRunner().invoke(
        main, ["upscale", "-s", "2", str(images / "strips.tif"), str(tmp_path / "a.tif")]
    )
    assert whole.exit_code == 1 and "PAFU_MAX_PIXELS" in whole.output
    parts = ["upscale", "-s", "2", "--chunks", "128", str(images / "strips.tif"), str(tmp_path / "b.tif")]
    assert CliRunner().invoke(main, parts).exit_code == 0
    monkeypatch.setenv("PAFU_MAX_PIXELS", "20000")  # PNG is decoded whole: the limit applies
    png = ["upscale", "-s", "2", "--chunks", "128", str(images / "rgb8.png"), str(tmp_path / "c.png")]
    r = CliRunner().invoke(main, png)
    assert r.exit_code == 1 and "PAFU_MAX_PIXELS" in r.output and not (tmp_path / "c.png").exists()


@pytest.mark.parametrize(
    "extra, message", [(["--ensemble"], "--chunks works without"), (["--chunks", "8"], "64")]
)
def test_upscale_chunks_refuses_what_it_cannot_do(images, tmp_path, extra, message):
    from click.testing import CliRunner

    from pafu_cli.cli.main import main

    args = ["upscale", "-s", "2", *extra, str(images / "rgb8.png"), str(tmp_path / "o.png")]
    if "--chunks" not in extra:
        args[3:3] = ["--chunks", "64"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and message in r.output and not (tmp_path / "o.png").exists()

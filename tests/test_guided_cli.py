"""``pafu guided-upsample`` and the ``guided_upsample`` API: formats, units and bit
depth kept, holes, flow vectors, previews, batches paired by stem, and the error
promise (one line, non-zero exit, no output)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from pafu_cli import guided_upsample
from pafu_cli.cli.main import main
from pafu_cli.errors import ModelError
from pafu_cli.io.images import read_image, write_image
from pafu_cli.io.maps import read_map, write_map


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _guide(h, w, seed=0, split=None):
    """A guide with a vertical colour edge at column ``split`` (default: the middle)."""
    g = np.full((h, w, 3), 40, np.uint8)
    g[:, (w // 2 if split is None else split) :] = 220
    return g + np.random.default_rng(seed).integers(0, 3, (h, w, 3)).astype(np.uint8)


def _step(h, w, lo, hi):
    d = np.full((h, w), lo, np.float32)
    d[:, w // 2 :] = hi
    return d


@pytest.fixture
def scene(tmp_path):
    """A 16-bit depth step (mm) at 12x16 and its 8x guide with the same edge."""
    write_map(tmp_path / "depth.png", _step(12, 16, 1000, 3000).astype(np.uint16))
    write_image(tmp_path / "rgb.png", _guide(96, 128))
    return tmp_path


def test_png16_keeps_units_depth_and_follows_the_guide_edge(scene):
    r = cli("guided-upsample", scene / "depth.png", scene / "rgb.png", scene / "out.png")
    assert r.exit_code == 0, r.output
    out = read_image(scene / "out.png").astype(int)
    assert read_image(scene / "out.png").dtype == np.uint16 and out.shape == (96, 128)
    # the learned default: the step stays at the guide's edge, within 1.5% of its height
    assert np.abs(out[:, :64] - 1000).max() <= 30 and np.abs(out[:, 64:] - 3000).max() <= 30
    assert np.abs(out[:, :48] - 1000).max() <= 12 and np.abs(out[:, 80:] - 3000).max() <= 12
    jbu = scene / "jbu.png"
    assert cli("guided-upsample", "-m", "jbu", scene / "depth.png", scene / "rgb.png", jbu).exit_code == 0
    j = read_image(jbu).astype(int)
    assert np.abs(j[:, :63] - 1000).max() <= 1 and np.abs(j[:, 65:] - 3000).max() <= 1
    bic = scene / "bic.png"
    assert cli("guided-upsample", "-m", "bicubic", scene / "depth.png", scene / "rgb.png", bic).exit_code == 0
    b = read_image(bic).astype(int)
    assert np.abs(b[:, 56:72] - np.where(np.arange(56, 72) < 64, 1000, 3000)).max() > 300  # bicubic blurs


def test_scale_and_size_options(scene):
    assert (
        cli("guided-upsample", "-s", "4", scene / "depth.png", scene / "rgb.png", scene / "a.npy").exit_code
        == 0
    )
    a, info = read_map(scene / "a.npy")
    assert a.shape == (48, 64) and info.dtype == "uint16"
    r = cli("guided-upsample", "--size", "100x70", scene / "depth.png", scene / "rgb.png", scene / "b.tif")
    assert r.exit_code == 0, r.output
    assert read_map(scene / "b.tif")[0].shape == (70, 100)
    r = cli(
        "guided-upsample",
        "-s",
        "4",
        "--size",
        "10x10",
        scene / "depth.png",
        scene / "rgb.png",
        scene / "c.tif",
    )
    assert r.exit_code == 2 and "not both" in r.output
    r = cli("guided-upsample", "--size", "ten", scene / "depth.png", scene / "rgb.png", scene / "c.tif")
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.output
    assert not (scene / "c.tif").exists()


@pytest.mark.parametrize("ext", [".npy", ".pfm", ".tif"])
@pytest.mark.parametrize("method, tol", [("jbu", 1e-4), (None, 0.06)])
def test_float_maps_fill_nan_holes(tmp_path, ext, method, tol):
    """A hole of 2 x 3 samples inside a flat surface is filled from that surface:
    exactly by JBU, within 3% of the step by the learned default (a model that
    learned that holes lie beyond depth edges fills it from the far side: 18%)."""
    d = _step(12, 16, 0.5, 2.5)
    d[4:6, 2:5] = np.nan
    write_map(tmp_path / f"in{ext}", d)
    write_image(tmp_path / "g.png", _guide(48, 64))
    args = ["-m", method] if method else []
    r = cli("guided-upsample", *args, tmp_path / f"in{ext}", tmp_path / "g.png", tmp_path / f"out{ext}")
    assert r.exit_code == 0, r.output
    out, info = read_map(tmp_path / f"out{ext}")
    assert info.dtype == "float32" and out.shape == (48, 64)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, :30], 0.5, atol=tol)
    np.testing.assert_allclose(out[:, 34:], 2.5, atol=tol)


@pytest.mark.parametrize("method, tol", [("jbu", 1), (None, 60)])
def test_zero_holes_with_invalid_0(tmp_path, method, tol):
    d = _step(12, 16, 1000, 3000).astype(np.uint16)
    d[3:5, 10:13] = 0
    write_map(tmp_path / "tof.png", d)
    write_image(tmp_path / "rgb.png", _guide(48, 64))
    args = ["-m", method] if method else []
    r = cli(
        "guided-upsample",
        *args,
        "--invalid",
        "0",
        tmp_path / "tof.png",
        tmp_path / "rgb.png",
        tmp_path / "o.png",
    )
    assert r.exit_code == 0, r.output
    out = read_image(tmp_path / "o.png").astype(int)
    assert out.min() >= 1000 - tol and np.abs(out[:, 34:] - 3000).max() <= tol
    # Without --invalid 0 the zeros are data and pull the values down.
    r = cli("guided-upsample", *args, tmp_path / "tof.png", tmp_path / "rgb.png", tmp_path / "p.png")
    p = read_image(tmp_path / "p.png").astype(int)
    assert p[16, 46] < 2000 and abs(out[16, 46] - 3000) <= tol  # the hole's centre (LR row 4, column 11)


def _write_flo(path, flow):
    h, w = flow.shape[:2]
    path.write_bytes(b"PIEH" + struct.pack("<ii", w, h) + flow.astype("<f4").tobytes())


def test_flow_vectors_are_rescaled_and_unknowns_filled(tmp_path):
    flow = np.zeros((10, 12, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.5, -0.5
    flow[2, 3] = 1e10  # unknown
    _write_flo(tmp_path / "f.flo", flow)
    write_image(tmp_path / "frame.png", np.full((40, 36, 3), 90, np.uint8))  # x4 rows, x3 columns
    r = cli("guided-upsample", tmp_path / "f.flo", tmp_path / "frame.png", tmp_path / "up.flo")
    assert r.exit_code == 0, r.output
    up, info = read_map(tmp_path / "up.flo")
    assert info.format == "flo" and up.shape == (40, 36, 2)
    np.testing.assert_allclose(up[..., 0], 1.5 * 3, atol=1e-4)
    np.testing.assert_allclose(up[..., 1], -0.5 * 4, atol=1e-4)
    # The same numbers in a .npy are not vectors unless asked.
    clean = flow.copy()
    clean[2, 3] = (1.5, -0.5)
    np.save(tmp_path / "f.npy", clean)
    r = cli("guided-upsample", tmp_path / "f.npy", tmp_path / "frame.png", tmp_path / "up.npy")
    assert r.exit_code == 0 and np.allclose(np.load(tmp_path / "up.npy")[..., 0], 1.5, atol=1e-4)
    r = cli("guided-upsample", "--vectors", tmp_path / "f.npy", tmp_path / "frame.png", tmp_path / "v.npy")
    assert r.exit_code == 0 and np.allclose(np.load(tmp_path / "v.npy")[..., 1], -2.0, atol=1e-4)


def test_preview_is_guide_and_colour_map_side_by_side(scene):
    r = cli(
        "guided-upsample",
        "--preview",
        scene / "view.png",
        scene / "depth.png",
        scene / "rgb.png",
        scene / "o.png",
    )
    assert r.exit_code == 0, r.output
    pic = read_image(scene / "view.png")
    assert pic.shape == (96, 256, 3) and pic.dtype == np.uint8
    np.testing.assert_array_equal(pic[:, :128], read_image(scene / "rgb.png"))
    left, right = pic[:, 128 + 10], pic[:, 256 - 10]  # near and far depth: different colours
    assert np.abs(left.astype(int) - right.astype(int)).max() > 50


def test_batch_pairs_maps_and_guides_by_stem(tmp_path):
    maps, guides, out = tmp_path / "maps", tmp_path / "guides", tmp_path / "out"
    maps.mkdir()
    guides.mkdir()
    for i in range(3):
        write_image(maps / f"0{i}_depth.png", _step(8, 8, 10 + i, 200).astype(np.uint8))
        write_image(guides / f"0{i}_rgb.png", _guide(32, 32, seed=i))
    (maps / "03_depth.png").write_bytes(b"not a png")
    write_image(guides / "03_rgb.png", _guide(32, 32))
    write_image(maps / "04_depth.png", np.zeros((8, 8), np.uint8))  # no guide for it
    r = cli("guided-upsample", "-j", "2", maps, guides, out)
    assert r.exit_code == 1
    assert "3 written" in r.output and "2 failed" in r.output
    assert "03_depth.png" in r.output and "no guide" in r.output
    for i in range(3):
        o = read_image(out / f"0{i}_depth.png")
        assert o.dtype == np.uint8 and o.shape == (32, 32) and abs(int(o[0, 0]) - (10 + i)) <= 1
    assert sorted(os.listdir(out)) == ["00_depth.png", "01_depth.png", "02_depth.png"]
    r = cli("guided-upsample", maps / "0*_depth.png", guides, out)  # existing outputs are skipped
    assert "3 skipped" in r.output


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing_guide", "no such guide"),
        ("swapped", "swapped"),
        ("bad_map", "depth.png"),
        ("exists", "file exists"),
        ("bad_ext", "unknown output extension"),
    ],
)
def test_errors_are_one_line_and_leave_no_output(scene, case, message):
    depth, rgb, out = scene / "depth.png", scene / "rgb.png", scene / "o.png"
    if case == "missing_guide":
        rgb = scene / "nope.png"
    elif case == "swapped":
        depth, rgb = rgb, depth
        write_map(scene / "depth_as_map.png", read_image(scene / "rgb.png")[:, :, 0])
        depth = scene / "depth_as_map.png"
        rgb = scene / "depth.png"
        write_image(scene / "small_rgb.png", _guide(12, 16))
        rgb = scene / "small_rgb.png"
    elif case == "bad_map":
        (scene / "depth.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "bad_ext":
        out = scene / "o.bmp"
    before = sorted(os.listdir(scene))
    r = cli("guided-upsample", depth, rgb, out)
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], r.output
    assert "Traceback" not in r.output
    assert sorted(os.listdir(scene)) == before
    if case == "exists":
        assert out.read_bytes() == b"keep me"


def test_api_nan_holes_and_methods():
    d = _step(6, 8, 1.0, 3.0)
    d[2, 1] = np.nan
    g = _guide(24, 32)
    for method in ("jbu", "bicubic", "bilinear"):
        y = guided_upsample(d, g, method=method)
        assert y.shape == (24, 32) and np.isfinite(y).all()
    all_holes = np.full((6, 8), np.nan)
    assert np.isnan(guided_upsample(all_holes, g)).all()
    with pytest.raises(ModelError, match="magic: no such shipped model"):
        guided_upsample(d, g, method="magic")
    with pytest.raises(ValueError, match="mask"):
        guided_upsample(d, g, mask=np.ones((3, 3)))


def test_evaluate_record_writes_the_means_into_shipped_guided_models(tmp_path, monkeypatch):
    """``pafu evaluate guided-upsample -m NAME --record`` stores each mean, RMSE to
    0.001, as "<set> x<s>" in the named shipped model; it refuses methods that are
    no shipped guided model and protocols whose keys nobody reads, writing nothing."""
    import dataclasses

    from conftest import shared_path

    from pafu_cli.models import list_models, load_model, models_dir, registry, save_model

    shipped = [n for n in list_models() if load_model(models_dir() / f"{n}.npz").task == "guided_upsample"]
    if not shipped:
        pytest.skip("no shipped guided_upsample model")
    data = shared_path("data", "depth")
    shared_path("data", "depth", "Middlebury30")
    m = load_model(models_dir() / f"{shipped[0]}.npz")
    save_model(dataclasses.replace(m, provenance=dict(m.provenance, quality="{}")), tmp_path / "gu.npz")
    monkeypatch.setattr(registry, "models_dir", lambda: tmp_path)
    before = (tmp_path / "gu.npz").read_bytes()
    for args, message in (
        (["-m", "jbu"], "shipped guided_upsample models only"),
        ([], "no --method"),
        (["-m", "gu", "--protocol", "decimation"], "bicubic and park protocols only"),
    ):
        r = cli("evaluate", "guided-upsample", "--data", data, "--set", "NYU3", "-s", "16", *args, "--record")
        assert r.exit_code == 1 and message in r.output, r.output
    assert (tmp_path / "gu.npz").read_bytes() == before
    args = ["--set", "Middlebury30", "-s", "8", "-m", "gu", "--record"]
    r = cli("evaluate", "guided-upsample", "--data", data, *args)
    assert r.exit_code == 0, r.output
    shown = float(r.output.strip().splitlines()[-1].split("|")[2])  # the table's 3 decimals
    again = load_model(tmp_path / "gu.npz")
    assert again.family == "pac" and again.quality == {"test": {"Middlebury30 x8": shown}}


def test_sigmas_need_jbu(scene):
    """--sigma-* set JBU's bandwidths: with the learned default they are an error, not ignored."""
    args = [scene / "depth.png", scene / "rgb.png", scene / "o.png"]
    r = cli("guided-upsample", "--sigma-range", "0.1", *args)
    assert r.exit_code == 2 and "-m jbu" in r.output and "Traceback" not in r.output
    assert not (scene / "o.png").exists()
    r = cli("guided-upsample", "-m", "jbu", "--sigma-range", "0.1", *args)
    assert r.exit_code == 0, r.output
    with pytest.raises(ValueError, match="method='jbu'"):
        guided_upsample(_step(6, 8, 1.0, 3.0), _guide(24, 32), sigma_spatial=0.5)
    a = guided_upsample(_step(6, 8, 1.0, 3.0), _guide(24, 32))
    b = guided_upsample(_step(6, 8, 1.0, 3.0), _guide(24, 32), method="guided_upsample")
    np.testing.assert_array_equal(a, b)  # the default is the shipped learned model

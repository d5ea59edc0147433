import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rawpy
from click.testing import CliRunner

from pafu_cli import __version__
from pafu_cli.cli.main import main
from pafu_cli.errors import ModelError
from pafu_cli.filters.pafu import analytic
from pafu_cli.filters.pafu.model import save_model
from pafu_cli.io import images
from pafu_cli.io.images import read_image, write_image
from pafu_cli.jobs import banding
from pafu_cli.jobs import upscale as jobs_upscale
from pafu_cli.jobs.banding import upscale_band_iter
from pafu_cli.jobs.output import to_bits
from pafu_cli.jobs.selection_map import selection_picture
from pafu_cli.jobs.upscale import UpscaleOptions, upscale_file
from pafu_cli.models import registry
from pafu_cli.models.choice import (
    NOISE_PICK_SCALE,
    VIVID_COLOURFULNESS,
    _family_in,
    denoise_family,
    high_form,
    pick_colour_model,
    pick_denoise_model,
    vivid_twin,
)

BAD_FILES = {
    "truncated/exiftool_CanonRaw.cr2": "unsupported format",
    "truncated/exiftool_CanonRaw.cr3": "truncated or no image data",
    "truncated/exiftool_DNG.dng": "truncated or no image data",
    "truncated/exiftool_FujiFilm.raf": "truncated or no image data",
    "truncated/exiftool_Nikon.nef": "truncated or no image data",
    "truncated/exiftool_Panasonic.rw2": "truncated or no image data",
    "unsupported/gopro_hero6_GOPR0024.gpr": "unsupported format",
    "linear/canon_eos6d_photoprism.dng": "already demosaicked",
    "linear/lg_h815_sample_1mp_skia.dng": "already demosaicked",
    "linear/nikon_d500_magicknet.dng": "already demosaicked",
    "nonbayer/kodak_c330_kimageformats.raw": "not a 2x2 Bayer sensor",
    "derived/xtrans_cfa_metadata.dng": "X-Trans sensor",
}
# 8-bit bt709 + auto-bright render vs rawpy LINEAR: (max, mean) abs difference allowed.
MATCH = {
    "bayer/canon_eos550d_colorchart_tinydng.dng": (0, 0.0),
    "bayer/google_pixel7_pigallery2.dng": (0, 0.0),
    "bayer/canon_eosd30_rawsamples_boostgil.crw": (1, 0.001),
    # LibRaw's built-in matrix, hidden by rawpy: probed (probe_libraw_matrix).
    "bayer/kodak_dc50_rawsamples.kdc": (1, 0.001),
    "derived/cfa_BGGR.dng": (1, 0.001),
    "derived/cfa_GBRG.dng": (1, 0.001),
    "derived/cfa_GRBG.dng": (1, 0.001),
    "derived/cfa_RGGB.dng": (1, 0.001),
    "derived/odd_activearea_top1.dng": (1, 0.001),
    "derived/orient6_RGGB.dng": (1, 0.001),
}


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def rawpy_linear(path, bits=8, gamma=(2.222, 4.5)):
    with rawpy.imread(str(path)) as raw:
        return raw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR,
            use_camera_wb=True,
            output_bps=bits,
            gamma=gamma,
        )


def one_error_line(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0]


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and r.output.startswith(f"pafu {__version__} (Python ")


def test_help_has_examples():
    for cmd in ("demosaick", "upscale"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and f"$ pafu {cmd}" in r.output


def test_sample_matches_rawpy_linear(tmp_path, sample_dng):
    out = tmp_path / "chart.png"
    r = run("demosaick", "--model", "bilinear", "--gamma", "bt709", sample_dng, out)
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_image(out), rawpy_linear(sample_dng))


def test_sample_16bit_tiff_srgb(tmp_path, sample_dng):
    out = tmp_path / "chart.tif"
    assert run("demosaick", "-m", "bilinear", sample_dng, out).exit_code == 0
    got = read_image(out)
    ref = rawpy_linear(sample_dng, 16, (2.4, 12.92))
    assert got.dtype == np.uint16 and got.shape == ref.shape
    d = np.abs(got.astype(int) - ref)
    assert d.max() <= 4 and d.mean() < 0.001


@pytest.mark.parametrize("name", sorted(MATCH))
def test_shared_files_match_rawpy_linear(tmp_path, shared_raw, name):
    out = tmp_path / "o.png"
    r = run("demosaick", "-m", "bilinear", "--gamma", "bt709", shared_raw / name, out)
    assert r.exit_code == 0, r.output
    got, ref = read_image(out), rawpy_linear(shared_raw / name)
    assert got.shape == ref.shape
    d = np.abs(got.astype(int) - ref)
    assert d.max() <= MATCH[name][0] and d.mean() <= MATCH[name][1]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_raw_files(tmp_path, shared_raw, name):
    out = tmp_path / "o.png"
    r = run("demosaick", "-m", "bilinear", shared_raw / name, out)
    one_error_line(r, str(shared_raw / name), BAD_FILES[name])
    assert list(tmp_path.iterdir()) == []


def test_options_change_the_render(tmp_path, sample_dng):
    outs = {}
    for key, opts in {
        "base": [],
        "noab": ["--no-auto-bright"],
        "bright": ["--bright", "2"],
        "day": ["--wb", "daylight"],
        "lin": ["--linear"],
    }.items():
        p = tmp_path / f"{key}.{'tif' if key == 'lin' else 'png'}"
        assert run("demosaick", "-m", "bilinear", *opts, sample_dng, p).exit_code == 0
        outs[key] = read_image(p).astype(float)
    assert outs["noab"].mean() < outs["base"].mean() < outs["bright"].mean()
    assert outs["lin"].max() > 255 and outs["lin"].mean() / 257 < outs["noab"].mean()
    day, base = outs["day"].mean(axis=(0, 1)), outs["base"].mean(axis=(0, 1))
    assert not np.allclose(day, base, atol=2)


def test_selection_map_and_verbose(tmp_path, sample_dng):
    sel = tmp_path / "sel.png"
    r = run("-v", "demosaick", "-m", "bilinear", "--selection-map", sel, sample_dng, tmp_path / "o.png")
    assert r.exit_code == 0 and "model bilinear" in r.stderr
    pic = read_image(sel)
    assert pic.shape == (1156, 1734, 3) and len(np.unique(pic.reshape(-1, 3), axis=0)) == 1


def test_denoise_picks_the_family_member_for_the_noise_level(tmp_path, sample_dng, monkeypatch):
    lin = analytic.bilinear_demosaick_model()
    save_model(lin.__class__(**{**lin.__dict__, "name": "demosaick"}), tmp_path / "demosaick.npz")
    for sg in (2, 5, 10):
        save_model(
            lin.__class__(**{**lin.__dict__, "noise_sigma": sg / 255, "name": f"demosaick_denoise_s{sg}"}),
            tmp_path / f"demosaick_denoise_s{sg}.npz",
        )
    monkeypatch.setattr(registry, "models_dir", lambda: tmp_path)
    assert [n for _, n in denoise_family()] == [
        "demosaick_denoise_s2",
        "demosaick_denoise_s5",
        "demosaick_denoise_s10",
    ]
    pick = pick_denoise_model
    assert pick(1.5 / 255, scale=1).name == "demosaick"
    assert pick(1.5 / 255, allow_clean=False, scale=1).name == "demosaick_denoise_s2"
    assert pick(2.5 / 255, scale=1).name == "demosaick"  # a tie at 2/255: the noise-free model
    assert pick(2.5 / 255, allow_clean=False, scale=1).name == "demosaick_denoise_s2"
    assert pick(4 / 255, allow_clean=False, scale=1).name == "demosaick_denoise_s5"
    assert pick(6 / 255, scale=1).name == "demosaick_denoise_s5"
    assert pick(30 / 255, scale=1).name == "demosaick_denoise_s10"
    # By default the estimate is scaled down first (photographs read above their noise).
    assert 0.5 < NOISE_PICK_SCALE < 1
    for level, name in (
        (4, "demosaick"),
        (7, "demosaick_denoise_s5"),
        (9, "demosaick_denoise_s5"),
        (14, "demosaick_denoise_s10"),
    ):
        assert pick(level / 255).name == name
        assert pick(level / 255).name == pick(level * NOISE_PICK_SCALE / 255, scale=1).name
    # The sample chart is clean (ISO 100): auto keeps the noise-free model, on denoises.
    r = run("-v", "demosaick", sample_dng, tmp_path / "a.png")
    assert r.exit_code == 0 and "denoise auto" in r.stderr and "model demosaick\n" in r.stderr, r.stderr
    r = run("-v", "demosaick", "--denoise", "on", sample_dng, tmp_path / "b.png")
    assert r.exit_code == 0 and "model demosaick_denoise_s2" in r.stderr, r.stderr
    r = run("-v", "demosaick", "--denoise", "on", "-m", "bilinear", sample_dng, tmp_path / "c.png")
    assert r.exit_code == 2 and "either --model or --denoise on" in r.stderr


def test_colours_pick_the_vivid_model_for_colourful_pictures(tmp_path, rng, monkeypatch):
    from pafu_cli.cfa import mosaic
    from pafu_cli.evaluation import protocols as evaluate

    lin = analytic.bilinear_demosaick_model()
    save_model(lin.__class__(**{**lin.__dict__, "name": "demosaick"}), tmp_path / "demosaick.npz")
    # A distinguishable "vivid" bank: bilinear with every output halved.
    vivid = lin.__class__(**{**lin.__dict__, "name": "demosaick_vivid", "bank": lin.bank * np.float32(0.5)})
    save_model(vivid, tmp_path / "demosaick_vivid.npz")
    monkeypatch.setattr(registry, "models_dir", lambda: tmp_path)
    t = VIVID_COLOURFULNESS
    assert pick_colour_model(t + 0.01).name == "demosaick_vivid"
    assert pick_colour_model(t).name == "demosaick"
    assert pick_colour_model(0.9, "natural").name == "demosaick"
    assert pick_colour_model(0.0, "vivid").name == "demosaick_vivid"
    grey = np.full((40, 40, 3), 0.5, np.float32) + rng.uniform(0, 0.1, (40, 40, 1)).astype(np.float32)
    red = grey * np.float32([1.0, 0.2, 0.1])
    for name, im, expect in (("grey", grey, "demosaick"), ("red", red, "demosaick_vivid")):
        write_image(tmp_path / f"{name}.png", np.rint(mosaic(im, "RGGB") * 65535).astype(np.uint16))
        for colours, want in (("natural", "demosaick"), ("auto", expect), ("vivid", "demosaick_vivid")):
            out = tmp_path / f"{name}_{colours}.png"
            r = run(
                "-v",
                "demosaick",
                "--pattern",
                "RGGB",
                "--denoise",
                "off",
                "--colours",
                colours,
                tmp_path / f"{name}.png",
                out,
            )
            assert r.exit_code == 0 and f"model {want}\n" in r.stderr, r.stderr
            got = read_image(out).astype(np.float64)
            ref = read_image(tmp_path / f"{name}_natural.png" if colours != "natural" else out)
            assert got.mean() == pytest.approx(
                ref.mean() * (0.5 if want == "demosaick_vivid" else 1), rel=0.01
            )
    # The evaluation picks per image as the command does.
    (tmp_path / "set").mkdir()
    for name, im in (("grey", grey), ("red", red)):
        write_image(tmp_path / "set" / f"{name}.png", np.rint(im * 255).astype(np.uint8))
    picks = {}
    auto = evaluate.demosaick_scores(tmp_path / "set", None, colours="auto", picks=picks)
    assert picks == {"set sigma 0": {"demosaick": 1, "demosaick_vivid": 1}}
    assert auto["grey"] == evaluate.demosaick_scores(tmp_path / "set", "demosaick")["grey"]
    assert auto["red"] == evaluate.demosaick_scores(tmp_path / "set", "demosaick_vivid")["red"]


def test_colours_pick_the_vivid_twin_of_a_denoising_member(tmp_path, rng, monkeypatch):
    from pafu_cli.cfa import mosaic

    assert vivid_twin("demosaick") == "demosaick_vivid"
    assert vivid_twin("demosaick_denoise_s5") == "demosaick_vivid_denoise_s5"
    with pytest.raises(ValueError):
        vivid_twin("upscale_x2")
    lin = analytic.bilinear_demosaick_model()
    for name, gain, sg in (
        ("demosaick", 1, 0),
        ("demosaick_denoise_s5", 1, 5),
        ("demosaick_vivid_denoise_s5", 0.5, 5),
        ("demosaick_denoise_s10", 1, 10),
    ):
        m = lin.__class__(
            **{**lin.__dict__, "name": name, "bank": lin.bank * np.float32(gain), "noise_sigma": sg / 255}
        )
        save_model(m, tmp_path / f"{name}.npz")
    monkeypatch.setattr(registry, "models_dir", lambda: tmp_path)
    # The twin joins no family: the levels are those of the plain members.
    assert [n for _, n in denoise_family()] == ["demosaick_denoise_s5", "demosaick_denoise_s10"]
    t = VIVID_COLOURFULNESS
    pick = pick_colour_model
    assert pick(t + 0.01, "auto", "demosaick_denoise_s5").name == "demosaick_vivid_denoise_s5"
    assert pick(t, "auto", "demosaick_denoise_s5").name == "demosaick_denoise_s5"
    assert pick(0.9, "natural", "demosaick_denoise_s5").name == "demosaick_denoise_s5"
    assert pick(0.0, "vivid", "demosaick_denoise_s5").name == "demosaick_vivid_denoise_s5"
    # No twin installed: the member itself, whatever is asked; the noise-free twin is missing too.
    assert pick(0.9, "auto", "demosaick_denoise_s10").name == "demosaick_denoise_s10"
    assert pick(0.9, "vivid", "demosaick_denoise_s10").name == "demosaick_denoise_s10"
    assert pick(0.9, "auto").name == "demosaick"
    with pytest.raises(ModelError):
        pick(0.9, "vivid")
    # The command: --denoise on with only the sigma-5 level near a small estimate.
    (tmp_path / "demosaick_denoise_s10.npz").unlink()
    _family_in.cache_clear()
    grey = np.full((40, 40, 3), 0.5, np.float32) + rng.uniform(0, 0.1, (40, 40, 1)).astype(np.float32)
    red = grey * np.float32([1.0, 0.2, 0.1])
    for name, im, expect in (
        ("grey", grey, "demosaick_denoise_s5"),
        ("red", red, "demosaick_vivid_denoise_s5"),
    ):
        write_image(tmp_path / f"{name}.png", np.rint(mosaic(im, "RGGB") * 65535).astype(np.uint16))
        for colours, want in (
            ("natural", "demosaick_denoise_s5"),
            ("auto", expect),
            ("vivid", "demosaick_vivid_denoise_s5"),
        ):
            out = tmp_path / f"{name}_{colours}.png"
            r = run(
                "-v",
                "demosaick",
                "--pattern",
                "RGGB",
                "--denoise",
                "on",
                "--colours",
                colours,
                tmp_path / f"{name}.png",
                out,
            )
            assert r.exit_code == 0 and f"model {want}\n" in r.stderr, r.stderr
            got = read_image(out).astype(np.float64)
            ref = read_image(tmp_path / f"{name}_natural.png")
            assert got.mean() == pytest.approx(ref.mean() * (0.5 if "vivid" in want else 1), rel=0.01)
    _family_in.cache_clear()


def test_high_forms_of_the_family_are_picked_only_for_quality_high(tmp_path, monkeypatch):
    """A member's pafunet form (name + _high) joins no denoising family; high_form
    swaps a pick for it where installed, keeps a model without one, and the
    noise-free default's missing high form is a one-line ModelError."""
    lin = analytic.bilinear_demosaick_model()
    for name, sg in (
        ("demosaick", 0),
        ("demosaick_denoise_s5", 5),
        ("demosaick_denoise_s5_high", 5),
        ("demosaick_denoise_s10", 10),
        ("demosaick_vivid", 0),
    ):
        m = lin.__class__(**{**lin.__dict__, "name": name, "noise_sigma": sg / 255})
        save_model(m, tmp_path / f"{name}.npz")
    monkeypatch.setattr(registry, "models_dir", lambda: tmp_path)
    _family_in.cache_clear()
    assert [n for _, n in denoise_family()] == ["demosaick_denoise_s5", "demosaick_denoise_s10"]
    pick = registry.resolve_model
    assert high_form(pick("demosaick_denoise_s5", "demosaick")).name == "demosaick_denoise_s5_high"
    assert high_form(pick("demosaick_denoise_s10", "demosaick")).name == "demosaick_denoise_s10"
    assert high_form(pick("demosaick_vivid", "demosaick")).name == "demosaick_vivid"
    with pytest.raises(ModelError, match="demosaick_high: no high-quality demosaick model"):
        high_form(pick("demosaick", "demosaick"))
    _family_in.cache_clear()


def test_mosaic_image_keeps_value_space(tmp_path, rng):
    cfa = rng.integers(1000, 60000, size=(12, 10)).astype(np.uint16)
    write_image(tmp_path / "m.png", cfa)
    r = run("demosaick", "--pattern", "GRBG", "-m", "bilinear", tmp_path / "m.png", tmp_path / "o.png")
    assert r.exit_code == 0, r.output
    out = read_image(tmp_path / "o.png")
    assert out.dtype == np.uint16 and out.shape == (12, 10, 3)
    np.testing.assert_array_equal(out[0, 1::2, 0], cfa[0, 1::2])  # red samples kept
    np.testing.assert_array_equal(out[1, 0::2, 2], cfa[1, 0::2])  # blue samples kept
    r = run(
        "demosaick",
        "--pattern",
        "GRBG",
        "-m",
        "bilinear",
        "--bits",
        "8",
        tmp_path / "m.png",
        tmp_path / "o8.png",
    )
    assert read_image(tmp_path / "o8.png").dtype == np.uint8
    one_error_line(
        run("demosaick", "-m", "bilinear", tmp_path / "m.png", tmp_path / "x.png"), "needs --pattern"
    )


def test_upscale_nearest_grey_rgb_alpha(tmp_path, rng):
    rgba = rng.integers(0, 255, size=(6, 5, 4)).astype(np.uint8)
    write_image(tmp_path / "a.png", rgba)
    r = run("upscale", "-s", "2", "-m", "nearest", tmp_path / "a.png", tmp_path / "b.png")
    assert r.exit_code == 0, r.output
    out = read_image(tmp_path / "b.png")
    assert out.shape == (12, 10, 4)
    np.testing.assert_array_equal(out[..., :3], rgba[..., :3].repeat(2, 0).repeat(2, 1))
    grey = rng.integers(0, 65535, size=(5, 4)).astype(np.uint16)
    write_image(tmp_path / "g.tif", grey)
    assert run("upscale", "-s", "3", "-m", "nearest", tmp_path / "g.tif", tmp_path / "g3.tif").exit_code == 0
    np.testing.assert_array_equal(read_image(tmp_path / "g3.tif"), grey.repeat(3, 0).repeat(3, 1))


def test_upscale_ensemble_and_selection(tmp_path, rng):
    img = rng.integers(0, 255, size=(7, 6, 3)).astype(np.uint8)
    write_image(tmp_path / "a.png", img)
    r = run(
        "upscale",
        "-s",
        "2",
        "-m",
        "bilinear",
        "--ensemble",
        "--selection-map",
        tmp_path / "s.png",
        tmp_path / "a.png",
        tmp_path / "e.png",
    )
    assert r.exit_code == 0, r.output
    assert run("upscale", "-s", "2", "-m", "bilinear", tmp_path / "a.png", tmp_path / "p.png").exit_code == 0
    e, p = read_image(tmp_path / "e.png").astype(int), read_image(tmp_path / "p.png").astype(int)
    assert e.shape == p.shape == (14, 12, 3) and np.abs(e - p).max() <= 1  # bilinear is symmetric
    assert read_image(tmp_path / "s.png").shape == (14, 12, 3)


@pytest.mark.parametrize(
    "ext,channels,dtype",
    [
        (".png", 3, np.uint8),
        (".tif", 3, np.uint16),
        (".png", 4, np.uint16),
        (".tif", 1, np.uint8),
        (".jpg", 3, np.uint8),
    ],
)
def test_upscale_streams_in_bands_with_identical_pixels(tmp_path, rng, monkeypatch, ext, channels, dtype):
    """The output is written band by band (many bands here); the file holds the
    same pixels as the whole-image result, and so does the selection map."""
    from pafu_cli.superres import upscale

    shape = (53, 41) + ((channels,) if channels > 1 else ())
    base = rng.random(shape[:2])
    img = np.stack([base ** (1 + c) for c in range(channels)], axis=-1) if channels > 1 else base
    img = (img * np.iinfo(dtype).max).astype(dtype)
    write_image(tmp_path / "in.png", img)
    monkeypatch.setattr(banding, "BAND_PIXELS", 41 * 4 * 9)  # 9 input rows per band at x2
    bands = []
    real = upscale_band_iter
    monkeypatch.setattr(
        jobs_upscale, "upscale_band_iter", lambda *a: (bands.append(1) or b for b in real(*a))
    )
    opts = UpscaleOptions(scale=2, selection_map=str(tmp_path / "sel.png"))
    upscale_file(tmp_path / "in.png", tmp_path / f"out{ext}", opts)
    assert len(bands) == 6  # 53 rows in bands of 9
    x = img.astype(np.float32) / np.iinfo(dtype).max
    colour = x[..., :3] if channels == 4 else x
    want, idx = upscale(colour, 2, model=None, return_selection=True)
    if channels == 4:
        alpha = upscale(x[..., 3], 2, model="bilinear")
        want = np.concatenate([want, alpha[..., None]], axis=2)
    want = to_bits(want, 8 if ext == ".jpg" else 8 * np.dtype(dtype).itemsize)
    got = read_image(tmp_path / f"out{ext}")
    if ext == ".jpg":  # not streamable: gathered, then encoded as write_image encodes
        write_image(tmp_path / "want.jpg", want)
        want = read_image(tmp_path / "want.jpg")
    np.testing.assert_array_equal(got, want)
    pic = selection_picture(idx.repeat(2, 0).repeat(2, 1), 32)
    np.testing.assert_array_equal(read_image(tmp_path / "sel.png"), pic)


def test_batch_skip_overwrite_and_failures(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_image(src / f"im{i}.png", rng.integers(0, 255, size=(4, 4, 3)).astype(np.uint8))
    (src / "broken.png").write_text("nope")
    out = tmp_path / "out"
    r = run("upscale", "-s", "2", "-m", "nearest", src, out)
    assert r.exit_code == 1
    assert "2 written, 0 skipped (exist), 1 failed" in r.stderr and "broken.png" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png"]
    r = run("upscale", "-s", "2", "-m", "nearest", src / "im0.png", src / "im1.png", out)
    assert r.exit_code == 0 and "0 written, 2 skipped" in r.stderr
    r = run("upscale", "-s", "2", "-m", "nearest", "--overwrite", "--jobs", "2", str(src / "im*.png"), out)
    assert r.exit_code == 0 and "2 written, 0 skipped" in r.stderr, r.output


def test_batch_recurses_and_mirrors_the_tree(tmp_path, rng):
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    img = rng.integers(0, 255, size=(4, 4, 3)).astype(np.uint8)
    write_image(src / "top.png", img)
    write_image(src / "sub" / "deeper" / "leaf.png", img)
    write_image(src / "sub" / "same.png", img)
    write_image(src / "sub" / "same.tif", img)
    out = tmp_path / "out"
    r = run("upscale", "-s", "2", "-m", "nearest", src, out)
    assert r.exit_code == 0, r.output
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    # Inputs that share a stem in one folder keep their suffix in the output name.
    assert got == ["sub/deeper/leaf.png", "sub/same.png.png", "sub/same.tif.png", "top.png"]
    np.testing.assert_array_equal(read_image(out / "sub" / "deeper" / "leaf.png")[::2, ::2], img)
    # An output folder inside the input folder: its files are not inputs on the next run.
    inner = src / "x2"
    assert run("upscale", "-s", "2", "-m", "nearest", src, inner).exit_code == 0
    r = run("upscale", "-s", "2", "-m", "nearest", src, inner)
    assert r.exit_code == 0 and "0 written, 4 skipped" in r.stderr, r.output


def test_single_output_not_overwritten(tmp_path, rng):
    write_image(tmp_path / "a.png", rng.integers(0, 255, size=(4, 4)).astype(np.uint8))
    write_image(tmp_path / "b.png", np.zeros((2, 2), np.uint8))
    one_error_line(
        run("upscale", "-s", "2", "-m", "nearest", tmp_path / "a.png", tmp_path / "b.png"),
        "exists; use --overwrite",
    )
    assert read_image(tmp_path / "b.png").shape == (2, 2)


@pytest.mark.parametrize("args", [["-s", "5"], ["-s", "2", "--bits", "12"], ["-s", "2", "--jobs", "0"]])
def test_bad_option_values_exit_2(tmp_path, args):
    r = run("upscale", *args, tmp_path / "a.png", tmp_path / "b.png")
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_bad_demosaick_options_exit_2(tmp_path, sample_dng):
    for args in (["--gamma", "foo"], ["--wb", "tungsten"], ["--pattern", "RGBG"]):
        assert run("demosaick", *args, sample_dng, tmp_path / "o.png").exit_code == 2


def _bad_models(tmp_path):
    up = analytic.nearest_upscale_model(2)
    save_model(up, tmp_path / "up2.npz")
    nan = analytic.bilinear_demosaick_model()
    bank = nan.bank.copy()
    bank[0, 0, 0, 1, 1] = np.nan
    import dataclasses

    save_model(dataclasses.replace(nan, bank=bank), tmp_path / "nan.npz")
    (tmp_path / "text.npz").write_text("hello")
    np.savez(tmp_path / "pickled.npz", bank=np.array([{"a": 1}], dtype=object))
    return {
        "up2.npz": "is a upscale model",
        "nan.npz": "NaN",
        "text.npz": "not a .npz model file",
        "pickled.npz": "pickled",
    }


def test_bad_model_files(tmp_path, sample_dng):
    for name, reason in _bad_models(tmp_path).items():
        r = run("demosaick", "-m", tmp_path / name, sample_dng, tmp_path / "o.png")
        one_error_line(r, name, reason)
    r = run("upscale", "-s", "3", "-m", tmp_path / "up2.npz", sample_dng, tmp_path / "o.png")
    assert r.exit_code == 1
    save_model(analytic.nearest_upscale_model(2), tmp_path / "x2.npz")
    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    one_error_line(
        run("upscale", "-s", "3", "-m", tmp_path / "x2.npz", tmp_path / "a.png", tmp_path / "o.png"),
        "upscales x2, x3 was asked for",
    )
    assert not (tmp_path / "o.png").exists()


def test_other_input_errors(tmp_path):
    (tmp_path / "empty.dng").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "nothing").mkdir()
    one_error_line(run("demosaick", tmp_path / "empty.dng", tmp_path / "o.png"), "empty file")
    one_error_line(
        run("upscale", "-s", "2", tmp_path / "text.png", tmp_path / "o.png"), "not a PNG, TIFF or JPEG image"
    )
    one_error_line(run("upscale", "-s", "2", tmp_path / "missing.png", tmp_path / "o.png"), "no such file")
    one_error_line(run("upscale", "-s", "2", tmp_path / "nothing", tmp_path / "out"), "holds no")
    write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    one_error_line(
        run("upscale", "-s", "2", "-m", "nearest", tmp_path / "a.png", tmp_path / "no" / "dir" / "o.png"),
        "does not exist",
    )
    one_error_line(
        run(
            "upscale",
            "-s",
            "2",
            "-m",
            "nearest",
            tmp_path / "a.png",
            tmp_path / "text.png",
            tmp_path / "a.png" / "sub",
        ),
        "cannot create the output folder",
    )


def test_too_large_for_memory(tmp_path, sample_dng):
    r = run("demosaick", "-m", "bilinear", sample_dng, tmp_path / "o.png", env={"PAFU_MEMORY_LIMIT": "1M"})
    one_error_line(r, "image too large for memory")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(fh, image, fmt):
        fh.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_encode", boom)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "o.png", np.zeros((2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_console_script_subprocess(tmp_path, sample_dng):
    exe = Path(sys.executable).parent / "pafu"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pafu_cli"]
    out = tmp_path / "chart.png"
    p = subprocess.run(
        cmd + ["-q", "demosaick", "-m", "bilinear", str(sample_dng), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert p.returncode == 0, p.stderr
    assert read_image(out).shape == (1156, 1734, 3)
    p = subprocess.run(
        cmd + ["demosaick", str(tmp_path / "missing.dng"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1 and p.stderr.strip().startswith("Error: ")


def test_console_entry_flushes_and_keeps_exit_codes(tmp_path):
    # The console script ends with os._exit: piped output must still arrive in full,
    # and the exit codes must be click's (0 ok, 1 runtime error, 2 usage error).
    cmd = [sys.executable, "-m", "pafu_cli"]
    p = subprocess.run(cmd + ["models"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    names = [line.split(":")[0] for line in p.stdout.splitlines()]
    assert "demosaick" in names and "upscale_x4" in names
    p = subprocess.run(
        cmd + ["upscale", "-s", "7", "a.png", "b.png"], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 2 and "'7' is not one of" in p.stderr
    p = subprocess.run(
        cmd + ["upscale", "-s", "2", str(tmp_path / "missing.png"), str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1 and p.stderr.startswith("Error: ") and "missing.png" in p.stderr
    assert not (tmp_path / "o.png").exists()


def test_upscale_quality_picks_the_shipped_model(tmp_path, rng, monkeypatch):
    """--quality fast|standard|high runs upscale_xS_fast / upscale_xS / upscale_xS_high;
    it excludes --model, and a level that is not installed is one line, exit 2."""
    img = rng.integers(0, 255, size=(9, 8, 3)).astype(np.uint8)
    write_image(tmp_path / "a.png", img)
    shipped = set(registry.list_models())
    for quality, suffix in registry.QUALITY_SUFFIX.items():
        name = "upscale_x2" + suffix
        if name not in shipped:
            continue
        out_q, out_m = tmp_path / f"{quality}.png", tmp_path / f"{quality}_m.png"
        assert run("upscale", "-s", "2", "--quality", quality, tmp_path / "a.png", out_q).exit_code == 0
        assert run("upscale", "-s", "2", "-m", name, tmp_path / "a.png", out_m).exit_code == 0
        np.testing.assert_array_equal(read_image(out_q), read_image(out_m))
    a, x = tmp_path / "a.png", tmp_path / "x.png"
    r = run("upscale", "-s", "2", "--quality", "high", "-m", "bilinear", a, x)
    assert r.exit_code == 2 and "either --model or --quality" in r.output
    empty = tmp_path / "no_models"
    empty.mkdir()
    monkeypatch.setattr(registry, "models_dir", lambda: empty)
    r = run("upscale", "-s", "3", "--quality", "high", tmp_path / "a.png", tmp_path / "y.png")
    assert r.exit_code == 2 and "upscale_x3_high: no high-quality upscale model x3 is installed" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "y.png").exists()


def test_demosaick_quality_high_takes_the_pafunet_model_for_clean_pictures(tmp_path, sample_dng):
    """--quality high swaps the noise-free default for demosaick_high (and only it);
    it excludes --model; -v names the model."""
    out_h, out_m = tmp_path / "h.png", tmp_path / "m.png"
    clean = ("--denoise", "off", "--colours", "natural")
    r = run("-v", "demosaick", "--quality", "high", *clean, sample_dng, out_h)
    assert r.exit_code == 0, r.output
    assert "model demosaick_high" in r.stderr
    assert run("demosaick", "-m", "demosaick_high", sample_dng, out_m).exit_code == 0
    np.testing.assert_array_equal(read_image(out_h), read_image(out_m))
    r = run("demosaick", "--quality", "high", "-m", "bilinear", sample_dng, tmp_path / "x.png")
    assert r.exit_code == 2 and "either --model or --quality" in r.output
    # A noisy mosaic: the sigma-10 member, and with --quality high its high form.
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    flat = 0.3 + 0.2 * xx + 0.1 * yy + rng.normal(0, 20 / 255, (64, 64))
    write_image(tmp_path / "noisy.png", np.rint(np.clip(flat, 0, 1) * 65535).astype(np.uint16))
    noisy = ("--pattern", "RGGB", "--denoise", "on", "--colours", "natural", tmp_path / "noisy.png")
    for quality, name in (("standard", "demosaick_denoise_s10"), ("high", "demosaick_denoise_s10_high")):
        out = tmp_path / f"noisy_{quality}.png"
        r = run("-v", "demosaick", "--quality", quality, *noisy[:-1], noisy[-1], out)
        assert r.exit_code == 0 and f"model {name}\n" in r.stderr, r.stderr
        ref = tmp_path / f"{name}.png"
        assert run("demosaick", "--pattern", "RGGB", "-m", name, noisy[-1], ref).exit_code == 0
        np.testing.assert_array_equal(read_image(out), read_image(ref))


def test_evaluate_quality_takes_the_shipped_models_of_that_level(tmp_path, rng):
    """pafu evaluate --quality high measures what --quality high runs: the same
    table row as -m upscale_x2_high / -m demosaick_high; it excludes --model, and
    demosaick has no fast level."""
    (tmp_path / "S").mkdir()
    yy, xx = np.mgrid[0:36, 0:36] / 36.0
    for i in range(2):  # smooth waves and an edge: the models differ by more than 0.01 dB
        f = rng.uniform(2, 6, 3)
        img = 0.5 + 0.3 * np.sin(2 * np.pi * (f[:, None, None] * xx + (i + 1) * yy))
        img = np.where(xx + yy > 1, img, 1 - img).transpose(1, 2, 0)
        write_image(tmp_path / "S" / f"im{i}.png", np.rint(img * 255).astype(np.uint8))
    base = ("evaluate", "--data", tmp_path, "--set", "S")

    def row(*args):
        r = run(*base, *args)
        assert r.exit_code == 0, r.output
        return r.stdout.strip().splitlines()[-1].split("|")[2:-1]

    assert row("upscale", "-s", "2", "--quality", "high") == row(
        "upscale", "-s", "2", "-m", "upscale_x2_high"
    )
    assert row("upscale", "-s", "2", "--quality", "high") != row("upscale", "-s", "2")
    assert row("demosaick", "--quality", "high") == row("demosaick", "-m", "demosaick_high")
    r = run(*base, "upscale", "--quality", "high", "-m", "upscale_x2")
    assert r.exit_code == 2 and "without --model" in r.output
    r = run(*base, "demosaick", "--quality", "fast")
    assert r.exit_code == 2 and "no fast models" in r.output

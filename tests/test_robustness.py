"""The promise for bad input, interruptions and odd environments: one ``Error:``
line naming the file, exit status 1 (2 for a bad setting), no traceback, no
output, nothing overwritten, no stray file; the rest of a batch goes on."""

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import rawpy
import tifffile
from click.testing import CliRunner
from PIL import Image
from raw_files import write_dng

from pafu_cli import _cache, demosaick, upscale
from pafu_cli.cli.main import main
from pafu_cli.errors import OutputError, one_line
from pafu_cli.filters.pafu import analytic
from pafu_cli.filters.pafu.model import save_model
from pafu_cli.io import _png, images
from pafu_cli.limits import parse_size


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def refused(r, code=1, *words):
    """The promise for a refused run: its exit status, one ``Error:`` line with ``words``."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == code, r.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), r.exception
    return lines[0]


def listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture
def picture(tmp_path):
    img = (np.random.default_rng(0).random((24, 30, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "in.png", img)
    return tmp_path / "in.png"


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png16(h, w, rows):
    """A 16-bit RGB PNG whose IHDR says ``h x w`` and whose data is ``rows`` (bytes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        _png.SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
    )


# --- settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2G", 2 << 30),
        ("2GB", 2 << 30),
        ("1.5GiB", 3 << 29),
        ("512m", 512 << 20),
        ("1T", 1 << 40),
        ("4096", 4096),
    ],
)
def test_sizes_parse(text, expected):
    assert parse_size(text, "X") == expected


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-1", "0", "2 XB", ""])
def test_bad_memory_limit_is_one_line_and_exit_2(tmp_path, picture, value):
    env = {"PAFU_MEMORY_LIMIT": value} if value else {"PAFU_MAX_PIXELS": "many"}
    r = run("upscale", "-s", "2", "-m", "nearest", picture, tmp_path / "out.png", env=env)
    refused(r, 2, "PAFU_")
    assert listing(tmp_path) == ["in.png"]


def test_good_memory_limit_with_unit_suffix(tmp_path, picture):
    r = run(
        "upscale", "-s", "2", "-m", "nearest", picture, tmp_path / "out.png", env={"PAFU_MEMORY_LIMIT": "2GB"}
    )
    assert r.exit_code == 0, r.output


# --- what an image file declares ----------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".tif", ".jpg"])
def test_pixel_limit_is_checked_from_the_header(tmp_path, ext):
    src = tmp_path / f"in{ext}"
    img = np.zeros((40, 50, 3), np.uint8)
    if ext == ".tif":
        tifffile.imwrite(src, img, compression="zlib")
    else:
        iio.imwrite(src, img)
    r = run("upscale", "-s", "2", "-m", "nearest", src, tmp_path / "out.png", env={"PAFU_MAX_PIXELS": "1999"})
    refused(r, 1, str(src), "50 x 40", "PAFU_MAX_PIXELS")
    assert run("upscale", "-s", "2", "-m", "nearest", src, tmp_path / "out.png").exit_code == 0


def test_png_decompression_bomb_is_refused_before_inflating(tmp_path):
    src = tmp_path / "bomb.png"
    src.write_bytes(png16(30000, 30000, b"\0" * 1000))  # declares 900 MP x 6 bytes
    t0 = time.perf_counter()
    refused(run("upscale", "-s", "2", src, tmp_path / "out.png"), 1, "bomb.png", "PAFU_MAX_PIXELS")
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ValueError, match="inflate"):  # and the decoder bounds what it inflates
        _png.decode16(png16(2, 3, b"\0" * 10_000))


def test_damaged_16_bit_pngs_are_refused(tmp_path):
    h, w = 4, 5
    rows = bytearray(b"".join(b"\0" + bytes(range(w * 6)) for _ in range(h)))
    good = png16(h, w, bytes(rows))
    assert _png.decode16(good).shape == (h, w, 3)
    rows[2 * (w * 6 + 1)] = 9  # filter type of row 2
    cases = {
        "filter.png": png16(h, w, bytes(rows)),
        "truncated.png": good[:-20],
        "crc.png": good[:40] + bytes([good[40] ^ 1]) + good[41:],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        refused(run("upscale", "-s", "2", tmp_path / name, tmp_path / "out.png"), 1, name)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("kind", ["jpg", "tif"])
def test_cmyk_images_are_refused_not_misread(tmp_path, kind):
    src = tmp_path / f"cmyk.{kind}"
    if kind == "jpg":
        Image.new("CMYK", (30, 20), (10, 200, 30, 0)).save(src)
    else:
        tifffile.imwrite(src, np.zeros((20, 30, 4), np.uint8), photometric="separated")
    refused(run("upscale", "-s", "2", src, tmp_path / "out.png"), 1, "CMYK")


def test_a_plugin_that_imageio_prefers_is_not_used(tmp_path, picture, monkeypatch):
    import imageio.v3 as iio_mod

    seen = []
    real = iio_mod.imread

    def spy(uri, *a, **k):
        seen.append(k.get("plugin"))
        return real(uri, *a, **k)

    monkeypatch.setattr(iio_mod, "imread", spy)
    images.read_image(picture)
    assert seen == ["pillow"]


# --- inputs and outputs ---------------------------------------------------------


def test_special_files_as_input_and_output(tmp_path, picture):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    refused(run("upscale", "-s", "2", fifo, tmp_path / "o.png"), 1, "fifo.png", "not a regular file")
    refused(run("upscale", "-s", "2", "/dev/null", tmp_path / "o.png"), 1, "/dev/null", "not a regular file")
    refused(run("upscale", "-s", "2", picture, "/dev/null"), 1, "/dev/null")
    assert listing(tmp_path) == ["fifo.png", "in.png"]


def test_an_output_with_an_image_extension_is_a_file(tmp_path, picture):
    second = tmp_path / "second.png"
    second.write_bytes(picture.read_bytes())
    refused(run("upscale", "-s", "2", picture, second, tmp_path / "result.png"), 1, "result.png", "2 inputs")
    assert not (tmp_path / "result.png").exists()


@pytest.mark.parametrize("sel", ["sel.gif", "missing/sel.png", "out.png"])
def test_a_bad_selection_map_path_stops_the_job_before_any_output(tmp_path, picture, sel):
    r = run("upscale", "-s", "2", "--selection-map", tmp_path / sel, picture, tmp_path / "out.png")
    refused(r, 1)
    assert listing(tmp_path) == ["in.png"]


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path):
    src = tmp_path / "bad\nname.png"
    src.write_bytes(b"not an image at all")
    line = refused(run("upscale", "-s", "2", src, tmp_path / "out.png"), 1, "bad\\nname.png")
    assert one_line("a\nb\tc é") == "a\\nb\\tc é" and "\n" not in line


def test_non_finite_results_are_refused(tmp_path, picture):
    m = analytic.bilinear_upscale_model(2)
    huge = m.__class__(**{**m.__dict__, "bank": m.bank * np.float32(3e38), "name": "overflowing"})
    save_model(huge, tmp_path / "huge.npz")
    r = run("upscale", "-s", "2", "-m", tmp_path / "huge.npz", picture, tmp_path / "out.png")
    refused(r, 1, "in.png", "non-finite")
    assert not (tmp_path / "out.png").exists()


def test_publishing_never_replaces_a_file_that_appeared(tmp_path):
    tmp, dst = tmp_path / "t", tmp_path / "d.png"
    tmp.write_bytes(b"new")
    dst.write_bytes(b"old")
    with pytest.raises(OutputError, match="appeared while writing"):
        images._publish(str(tmp), dst, overwrite=False)
    assert dst.read_bytes() == b"old"
    images._publish(str(tmp), dst, overwrite=True)
    assert dst.read_bytes() == b"new"


def test_temporary_files_of_stopped_runs_are_removed(tmp_path, picture):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".out.pafu{int(dead.stdout)}-x1y2.part.png"
    alive = tmp_path / f".other.pafu{os.getppid()}-a1b2.part.png"
    stale.write_bytes(b"half")
    alive.write_bytes(b"half")
    images._SWEPT.discard(str(tmp_path))
    assert run("upscale", "-s", "2", "-m", "nearest", picture, tmp_path / "out.png").exit_code == 0
    assert not stale.exists() and alive.exists()


# --- signals, in real processes --------------------------------------------------


def _pafu(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "pafu_cli", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_part_file(folder, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if any(".part" in p.name for p in Path(folder).iterdir()):
            return True
        time.sleep(0.02)
    return False


def _ends(pid, timeout=10.0):
    """Whether process ``pid`` ends (or is a zombie: dead, not yet reaped) within ``timeout``."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def big_picture(tmp_path):
    img = (np.random.default_rng(1).random((900, 1200, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "big.png", img)
    return tmp_path / "big.png"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_write_leaves_nothing(tmp_path, big_picture, sig):
    p = _pafu(["upscale", "-s", "4", big_picture, "out.png"], tmp_path)
    assert _wait_for_part_file(tmp_path, p), p.communicate()[1]
    p.send_signal(sig)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == (128 + sig if sig != signal.SIGINT else 1), err
    assert "Traceback" not in err
    assert listing(tmp_path) == ["big.png"]


def test_a_terminated_batch_stops_its_workers(tmp_path, big_picture):
    for i in range(3):
        (tmp_path / f"b{i}.png").write_bytes(big_picture.read_bytes())
    out = tmp_path / "out"
    p = _pafu(
        ["upscale", "-s", "4", "-j", "2", tmp_path / "b0.png", tmp_path / "b1.png", tmp_path / "b2.png", out],
        tmp_path,
    )
    t0 = time.time()
    while not (out.is_dir() and any(".part" in f.name for f in out.iterdir())) and time.time() - t0 < 90:
        time.sleep(0.05)
    children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    for pid in map(int, children):  # workers (and the resource tracker) are gone
        assert _ends(pid), f"process {pid} still runs"
    assert not [f for f in out.iterdir() if ".part" in f.name]


# --- environment ----------------------------------------------------------------


def test_read_only_package_and_home_use_a_temporary_cache(monkeypatch):
    import numba

    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # restored after the test, as is Numba's setting
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.setattr(_cache, "_writable", lambda folder: False)
    monkeypatch.setattr(_cache, "_notes", [])
    _cache.setup()
    folder = os.environ["NUMBA_CACHE_DIR"]
    assert Path(folder).name == f"pafu-numba-cache-{os.getuid()}"
    assert "compiled kernels are cached in" in _cache.notes()[0]
    assert numba.config.CACHE_DIR == folder


def test_a_cold_cache_is_announced_unless_quiet(tmp_path, picture, monkeypatch):
    from pafu_cli.filters.pafu import _band

    monkeypatch.setattr(_cache, "kernels_cached", lambda: False)
    monkeypatch.setattr(_band, "_SIMD_RAN", [])  # as in a new process
    monkeypatch.setattr(_cache, "_announced", [])
    r = run("upscale", "-s", "2", "-m", "nearest", picture, tmp_path / "a.png")
    assert r.exit_code == 0 and "compiling pafu's kernels once" in r.stderr
    monkeypatch.setattr(_cache, "_announced", [])
    monkeypatch.setattr(_band, "_SIMD_RAN", [])
    r = run("-q", "upscale", "-s", "2", "-m", "nearest", picture, tmp_path / "b.png")
    assert r.exit_code == 0 and r.stderr == ""
    monkeypatch.setattr(_cache, "_announced", [])  # a refused input: its one line only
    refused(run("upscale", "-s", "2", tmp_path / "missing.png", tmp_path / "c.png"), 1, "missing.png")
    assert _cache.kernels_cached() is False


# --- RAW files LibRaw handles by fallback -----------------------------------------


def test_dng_without_as_shot_white_renders_like_libraw(tmp_path):
    rng = np.random.default_rng(3)
    h, w = 120, 160
    scene = np.kron(rng.random((4, 5, 3)) * 0.7 + 0.05, np.ones((40, 40, 1)))[:h, :w]
    cfa = np.empty((h, w))
    for dy in (0, 1):
        for dx in (0, 1):
            cfa[dy::2, dx::2] = scene[dy::2, dx::2, [0, 1, 1, 2][2 * dy + dx]]
    matrix = [[0.6461, -0.0907, -0.0882], [-0.4300, 1.2184, 0.2378], [-0.0819, 0.1944, 0.5931]]
    write_dng(tmp_path / "nowb.dng", np.round(cfa * 60000).astype(np.uint16), matrix)
    r = run(
        "demosaick", "--model", "bilinear", "--gamma", "bt709", tmp_path / "nowb.dng", tmp_path / "out.png"
    )
    assert r.exit_code == 0, r.output
    with rawpy.imread(str(tmp_path / "nowb.dng")) as raw:
        assert raw.camera_whitebalance[0] == 0  # no as-shot white recorded
        want = raw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR, use_camera_wb=True, output_bps=8
        )
    got = iio.imread(tmp_path / "out.png")
    assert np.abs(got.astype(int) - want).max() <= 1


# --- the Python API ----------------------------------------------------------------


@pytest.mark.parametrize(
    "call,error,words",
    [
        (lambda: upscale(np.zeros((4, 5, 3)), "2"), TypeError, ["integer 2, 3 or 4", "'2'"]),
        (lambda: upscale(np.zeros((4, 5, 3)), 5), ValueError, ["scale 5"]),
        (lambda: upscale(np.zeros((0, 5, 3)), 2), ValueError, ["empty"]),
        (lambda: upscale(np.full((4, 5, 3), np.nan), 2), ValueError, ["NaN"]),
        (lambda: upscale(np.array([[1.0, np.inf]]), 2), ValueError, ["infinite"]),
        (lambda: upscale(np.array([["a", "b"]]), 2), TypeError, ["dtype <U1"]),
        (lambda: upscale(np.zeros((4, 5, 7)), 2), ValueError, ["(4, 5, 7)"]),
        (lambda: demosaick(np.zeros((4, 4)), 5), TypeError, ["CFA pattern", "5"]),
        (lambda: demosaick(np.zeros((4, 4)), "RGBG"), ValueError, ["RGBG"]),
        (lambda: demosaick(np.full((4, 4), np.nan), "RGGB"), ValueError, ["mosaic contains NaN"]),
        (lambda: demosaick(np.zeros((1, 4)), "RGGB"), ValueError, ["2x2"]),
        (lambda: demosaick(np.zeros((4, 4, 3)), "RGGB"), ValueError, ["2-D"]),
    ],
)
def test_the_api_says_what_was_given_and_what_is_expected(call, error, words):
    with pytest.raises(error) as e:
        call()
    assert all(w in str(e.value) for w in words), str(e.value)


def test_a_bad_model_in_a_batch_is_one_line_before_any_file(tmp_path, picture):
    second = tmp_path / "second.png"
    second.write_bytes(picture.read_bytes())
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 cut short")
    r = run("upscale", "-s", "2", "-m", tmp_path / "broken.npz", picture, second, tmp_path / "out")
    refused(r, 1, "broken.npz", "truncated")
    assert not (tmp_path / "out").exists()


def test_a_ctrl_c_swallowed_by_a_callback_still_ends_the_command():
    """A KeyboardInterrupt raised inside a callback (a weakref's, an import lock's)
    is swallowed by Python; the command must still end, with status 1, within the
    grace time, and not finish its work (which would write the output after all)."""
    code = (
        "import os, signal, time, weakref\n"
        "from pafu_cli import _runtime\n"
        "_runtime.install()\n"
        "class A: pass\n"
        "a = A()\n"
        "def cb(_):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "r = weakref.ref(a, cb)\n"
        "del a\n"
        "time.sleep(8)\n"
        "print('finished')\n"
    )
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "finished" not in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert time.time() - t0 < 7

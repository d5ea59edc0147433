"""Damaged files, made by seeded truncations, bit flips and header edits of good
PNG, TIFF, JPEG, DNG and model files: every one is either processed correctly or
refused with the promise kept (one ``Error:`` line, no traceback, no output, no
stray file). Bounded: a fixed number of cases per format, small files."""

import subprocess
import sys
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from raw_files import write_dng

from pafu_cli.cli.main import main
from pafu_cli.filters.pafu import analytic
from pafu_cli.filters.pafu.model import save_model
from pafu_cli.io import _png

CASES = 24  # per format
SEED = 20261207


def mutations(data: bytes, rng, n: int):
    """``n`` damaged copies of ``data``: truncations, bit flips, header edits."""
    out = []
    for i in range(n):
        b = bytearray(data)
        kind = i % 3
        if kind == 0:  # truncated anywhere, the header included
            b = b[: int(rng.integers(1, len(b)))]
        elif kind == 1:  # a few flipped bits anywhere
            for _ in range(int(rng.integers(1, 8))):
                j = int(rng.integers(0, len(b)))
                b[j] ^= 1 << int(rng.integers(0, 8))
        else:  # header fields overwritten (sizes, types, offsets)
            for _ in range(int(rng.integers(1, 4))):
                j = int(rng.integers(0, min(len(b), 128)))
                b[j] = int(rng.choice([0, 0xFF, 0x7F, int(rng.integers(0, 256))]))
        out.append(bytes(b))
    return out


def good_files(tmp: Path) -> dict:
    rng = np.random.default_rng(SEED)
    rgb = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    files = {}
    iio.imwrite(tmp / "g8.png", rgb)
    files["png8"] = (tmp / "g8.png").read_bytes()
    files["png16"] = _png.encode((rng.random((12, 10, 3)) * 65535).astype(np.uint16))
    tifffile.imwrite(tmp / "g.tif", rgb, compression="zlib")
    files["tif"] = (tmp / "g.tif").read_bytes()
    iio.imwrite(tmp / "g.jpg", rgb, extension=".jpg")
    files["jpg"] = (tmp / "g.jpg").read_bytes()
    save_model(analytic.bilinear_upscale_model(2), tmp / "g.npz")
    files["npz"] = (tmp / "g.npz").read_bytes()
    return files


def check_promise(r, out: Path, folder: Path, before: set):
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code in (0, 1), (r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    stray = sorted(p.name for p in folder.iterdir() if p.name not in before and p != out)
    assert not stray, stray
    if r.exit_code == 0:
        assert out.exists() and iio.imread(out).size
    else:
        assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
        assert not out.exists()


@pytest.mark.parametrize("fmt", ["png8", "png16", "tif", "jpg", "npz"])
def test_damaged_files_keep_the_promise(tmp_path, fmt):
    rng = np.random.default_rng([SEED, zlib.crc32(fmt.encode()) % 1000])  # str hash() varies per run
    good = good_files(tmp_path)
    ext = {"png8": ".png", "png16": ".png", "tif": ".tif", "jpg": ".jpg", "npz": ".npz"}[fmt]
    for i, data in enumerate(mutations(good[fmt], rng, CASES)):
        src = tmp_path / f"case{i}{ext}"
        src.write_bytes(data)
        out = tmp_path / f"out{i}.png"
        before = {p.name for p in tmp_path.iterdir()}
        if fmt == "npz":
            args = ["upscale", "-s", "2", "-m", src, tmp_path / "g8.png", out]
        else:
            args = ["upscale", "-s", "2", "-m", "nearest", src, out]
        r = CliRunner().invoke(main, [str(a) for a in args])
        check_promise(r, out, tmp_path, before)


def test_damaged_dngs_keep_the_promise_in_a_batch(tmp_path):
    """LibRaw decodes in the process, so the DNG cases run as one batch in a child
    process: each is written or listed as failed, and the batch goes on."""
    rng = np.random.default_rng(SEED)
    cfa = (rng.random((64, 80)) * 60000).astype(np.uint16)
    write_dng(tmp_path / "good.dng", cfa, np.eye(3), as_shot_neutral=(0.5, 1, 0.7))
    src = tmp_path / "in"
    src.mkdir()
    cases = mutations((tmp_path / "good.dng").read_bytes(), rng, CASES)
    for i, data in enumerate(cases):
        (src / f"case{i:02d}.dng").write_bytes(data)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "pafu_cli", "demosaick", "--model", "bilinear", src, out],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr[-3000:]
    failed = {
        line.split("failed: ", 1)[1].split(":", 1)[0] for line in r.stderr.splitlines() if "failed: " in line
    }
    written = {p.stem for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    for i in range(len(cases)):
        name = f"case{i:02d}"
        assert (name in written) != any(Path(f).stem == name for f in failed), name
    for p in out.iterdir():
        assert iio.imread(p).ndim == 3


@pytest.mark.parametrize("method", [99, 12])  # unknown, and bzip2 (which zipfile may lack)
def test_a_model_with_an_unsupported_zip_compression_is_one_line(tmp_path, method):
    """A zip member whose compression method pafu's zipfile cannot inflate (a damaged
    header byte, or another tool's archive): one line naming the file, exit 1."""
    import struct

    save_model(analytic.bilinear_upscale_model(2), tmp_path / "m.npz")
    data = bytearray((tmp_path / "m.npz").read_bytes())
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local headers and directory entries
        i = data.find(sig)
        while i >= 0:
            data[i + off : i + off + 2] = struct.pack("<H", method)
            i = data.find(sig, i + 4)
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    iio.imwrite(tmp_path / "g.png", np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "o.png"
    args = ["upscale", "-s", "2", "-m", tmp_path / "bad.npz", tmp_path / "g.png", out]
    r = CliRunner().invoke(main, [str(a) for a in args])
    check_promise(r, out, tmp_path, {p.name for p in tmp_path.iterdir()})
    assert r.exit_code == 1 and "bad.npz" in r.output

"""Fingerprint every kind of pafu output, for refactors that must not change a pixel.

Runs the CLI (RAW renders 8/16-bit and linear, mosaic demosaicks clean and noisy in
all four layouts, upscales x2/x3/x4 with and without --ensemble, grey, 16-bit, alpha,
tiny and JPEG inputs, selection maps) and the array API (every shipped model, tiny
to medium sizes) on inputs made from ../shared, and writes the sha256 of each output
to OUTDIR/hashes.json (749 entries) and the API arrays to OUTDIR/api.npz. Run it
before and after a change with the same data and compare the two hashes.json:

    python tools/output_hashes.py /tmp/before   # on the old commit
    python tools/output_hashes.py /tmp/after    # on the new one
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("outdir", help="folder for the outputs, hashes.json and api.npz")
ap.add_argument(
    "--shared", default=os.environ.get("PAFU_SHARED", str(Path(__file__).resolve().parents[2] / "shared"))
)
args = ap.parse_args()
out = Path(args.outdir)
out.mkdir(parents=True, exist_ok=True)
S = Path(args.shared)
REPO = Path(__file__).resolve().parents[1]
hashes = {}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def cli(name, *args):
    r = subprocess.run([sys.executable, "-m", "pafu_cli", *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL", name, r.stderr[-500:])
        hashes[name] = f"rc{r.returncode}"
        return
    for f in sorted(out.glob(name + "*")):
        hashes[f.name] = sha(f.read_bytes())
    print(name, "ok", flush=True)


inp = out / "inputs"
inp.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
k = iio.imread(S / "data/Kodak24/kodim03.png")[100:356, 200:520]  # 256x320
pat_off = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}
for p in pat_off:
    ch = {"R": 0, "G": 1, "B": 2}
    m = np.zeros(k.shape[:2], np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            c = ch[p[2 * dy + dx]]
            m[dy::2, dx::2] = k[dy::2, dx::2, c] / 255.0
    # odd crop on one pattern
    if p == "GBRG":
        m = m[:251, :317]
    iio.imwrite(inp / f"mos_{p}.png", np.round(m * 65535).astype(np.uint16))
    noisy = np.clip(m + rng.normal(0, 5 / 255, m.shape), 0, 1)
    iio.imwrite(inp / f"noisy_{p}.png", np.round(noisy * 65535).astype(np.uint16))
small = k[:40, :56]
iio.imwrite(inp / "rgb8.png", k)
iio.imwrite(inp / "rgb16.tif", (k.astype(np.uint16) * 257)[:97, :131])
iio.imwrite(inp / "grey.png", k[:, :, 1])
iio.imwrite(
    inp / "rgba.png",
    np.dstack([k, (np.arange(k.shape[1]) % 256).astype(np.uint8)[None].repeat(k.shape[0], 0)]),
)
iio.imwrite(inp / "tiny.png", k[:5, :7])

raws = [
    "bayer/canon_eosd30_rawsamples_boostgil.crw",
    "bayer/google_pixel7_pigallery2.dng",
    "bayer/kodak_dc50_rawsamples.kdc",
    "derived/cfa_GBRG.dng",
    "derived/orient6_RGGB.dng",
    "derived/odd_activearea_top1.dng",
]
sample = REPO / "samples/canon_eos550d_colorchart.dng"
cli("raw_sample8", "demosaick", sample, out / "raw_sample8.png")
cli(
    "raw_sample16",
    "demosaick",
    "--bits",
    "16",
    "--selection-map",
    out / "raw_sample16_sel.png",
    sample,
    out / "raw_sample16.tif",
)
cli("raw_samplelin", "demosaick", "--linear", sample, out / "raw_samplelin.tif")
cli(
    "raw_samplebil", "demosaick", "--model", "bilinear", "--gamma", "bt709", sample, out / "raw_samplebil.png"
)
cli(
    "raw_samplevivid",
    "demosaick",
    "--colours",
    "vivid",
    "--denoise",
    "on",
    sample,
    out / "raw_samplevivid.png",
)
for i, r in enumerate(raws):
    cli(f"raw_{i}", "demosaick", S / "raw" / r, out / f"raw_{i}.png")
for p in pat_off:
    cli(
        f"mos_{p}",
        "demosaick",
        "--pattern",
        p,
        "--selection-map",
        out / f"mos_{p}_sel.png",
        inp / f"mos_{p}.png",
        out / f"mos_{p}.png",
    )
    cli(
        f"noisy_{p}",
        "demosaick",
        "--pattern",
        p,
        "--denoise",
        "on",
        inp / f"noisy_{p}.png",
        out / f"noisy_{p}.png",
    )
cli("noisyauto", "demosaick", "--pattern", "RGGB", inp / "noisy_RGGB.png", out / "noisyauto.tif")
cli(
    "mosvivid",
    "demosaick",
    "--pattern",
    "GRBG",
    "--colours",
    "vivid",
    "--model",
    "demosaick_vivid_denoise_s10",
    inp / "mos_GRBG.png",
    out / "mosvivid.png",
)
for s in (2, 3, 4):
    cli(
        f"up{s}_",
        "upscale",
        "-s",
        s,
        "--selection-map",
        out / f"up{s}_sel.png",
        inp / "rgb8.png",
        out / f"up{s}_.png",
    )
    cli(
        f"upfast{s}_",
        "upscale",
        "-s",
        s,
        "--model",
        f"upscale_x{s}_fast",
        inp / "rgb16.tif",
        out / f"upfast{s}_.tif",
    )
    cli(f"upens{s}_", "upscale", "-s", s, "--ensemble", inp / "rgb16.tif", out / f"upens{s}_.png")
    cli(f"upgrey{s}_", "upscale", "-s", s, inp / "grey.png", out / f"upgrey{s}_.png")
    cli(f"uprgba{s}_", "upscale", "-s", s, inp / "rgba.png", out / f"uprgba{s}_.png")
    cli(f"uptiny{s}_", "upscale", "-s", s, inp / "tiny.png", out / f"uptiny{s}_.png")
cli("upjpg", "upscale", "-s", 2, inp / "rgb8.png", out / "upjpg.jpg")

# API on arrays, including tiny sizes
from pafu_cli import demosaick, upscale  # noqa: E402

dm = [
    "demosaick",
    "demosaick_vivid",
    "demosaick_denoise_s2",
    "demosaick_denoise_s5",
    "demosaick_denoise_s10",
    "demosaick_vivid_denoise_s5",
    "demosaick_vivid_denoise_s10",
    "bilinear",
]
arrs = {}
for h, w in [(2, 2), (3, 5), (6, 8), (11, 13), (20, 30), (37, 41), (64, 70), (130, 97)]:
    x = rng.random((h, w)).astype(np.float32)
    for p in pat_off:
        for mname in dm:
            rgb, sel = demosaick(x, p, model=mname, return_selection=True)
            arrs[f"dm_{h}x{w}_{p}_{mname}"] = rgb
            arrs[f"dmsel_{h}x{w}_{p}_{mname}"] = sel
for h, w in [(1, 1), (2, 3), (5, 7), (9, 12), (17, 23), (40, 33), (90, 77)]:
    x = rng.random((h, w, 3)).astype(np.float32)
    for s in (2, 3, 4):
        for mname in [None, f"upscale_x{s}_fast", "nearest", "bilinear"]:
            y, sel = upscale(x, s, model=mname, return_selection=True)
            arrs[f"up_{h}x{w}_{s}_{mname}"] = y
            arrs[f"upsel_{h}x{w}_{s}_{mname}"] = sel
        arrs[f"upg_{h}x{w}_{s}"] = upscale(x[..., 0], s)
for kk, v in arrs.items():
    hashes["api:" + kk] = sha(np.ascontiguousarray(v).tobytes()) + str(v.shape) + str(v.dtype)
np.savez(out / "api.npz", **arrs)
(out / "hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True))
print("n hashes", len(hashes))

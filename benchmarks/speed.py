"""Speed and memory of pafu against its anchors, measured in one run.

Usage::

    python benchmarks/speed.py [--data ../shared/data] [--repeats 3] [--quick]
        [--demosaick-models default,bilinear,FILE.npz] [--no-scaling] [--no-big-upscale]

Every case runs in a fresh Python process (so its peak resident memory, read
from ``VmHWM`` in ``/proc/self/status``, is its own) and reports the median of
``--repeats`` timed calls after one warm-up call. Anchors (LibRaw AHD through
rawpy, OpenCV INTER_LANCZOS4) run in the same invocation, since absolute times
on shared machines drift; compare ratios. OpenCV is needed only here
(``pip install opencv-python-headless``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pafu_cli.models.registry import list_models

HERE = Path(__file__).resolve().parent


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def make_mosaic(data: Path, h: int, w: int) -> np.ndarray:
    """(h, w) uint16 RGGB mosaic made by tiling Kodak images (as ANCHORS.md)."""
    import imageio.v3 as iio

    from pafu_cli.cfa import mosaic

    tiles = [iio.imread(p) for p in sorted((data / "Kodak24").glob("*.png"))]
    tiles = [t if t.shape[0] == 512 else t.transpose(1, 0, 2) for t in tiles]
    rows = []
    k = 0
    for _ in range(-(-h // 512)):
        row = []
        for _ in range(-(-w // 768)):
            row.append(tiles[k % len(tiles)])
            k += 1
        rows.append(np.concatenate(row, axis=1))
    rgb = np.concatenate(rows, axis=0)[:h, :w]
    return (mosaic(rgb, "RGGB").astype(np.uint32) * 257).astype(np.uint16)


# --- the cases (each runs in its own process) ---------------------------------


def case_libraw(dng, algo, repeats):
    import rawpy

    settings = dict(
        output_color=rawpy.ColorSpace.raw,
        gamma=(1, 1),
        no_auto_bright=True,
        user_wb=[1, 1, 1, 1],
        user_black=0,
        user_sat=65535,
        adjust_maximum_thr=0,
        output_bps=16,
        demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, algo),
    )
    times = []
    for i in range(repeats + 1):
        with rawpy.imread(dng) as raw:
            raw.raw_image  # unpack, not timed  # noqa: B018
            t0 = time.perf_counter()
            raw.postprocess(**settings)
            if i:
                times.append(time.perf_counter() - t0)
    return float(np.median(times))


def case_pafu_demosaick(npy, model, repeats):
    from pafu_cli import demosaick

    cfa = np.load(npy)
    x = cfa.astype(np.float32) / np.float32(65535)
    del cfa
    return _median_time(lambda: demosaick(x, "RGGB", model=model), repeats)


def case_upscale(npy, scale, model, repeats):
    img = np.load(npy)
    if model == "lanczos":
        import cv2

        h, w = img.shape[:2]
        return _median_time(
            lambda: cv2.resize(img, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4), repeats
        )
    from pafu_cli import upscale

    x = img.astype(np.float32) / 255
    return _median_time(lambda: upscale(x, scale, model=model), repeats)


def case_cli(argv):
    """One ``pafu`` command in this process (for its peak memory); returns seconds."""
    from pafu_cli.cli.main import main

    t0 = time.perf_counter()
    main(argv, standalone_mode=False)
    return time.perf_counter() - t0


def _one(args):
    kind, rest = args[0], args[1:]
    repeats = int(os.environ.get("PAFU_BENCH_REPEATS", "3"))
    if kind == "cli":
        sec = case_cli(rest)
    elif kind == "libraw":
        sec = case_libraw(rest[0], rest[1], repeats)
    elif kind == "demosaick":
        sec = case_pafu_demosaick(rest[0], None if rest[1] == "default" else rest[1], repeats)
    elif kind == "upscale":
        sec = case_upscale(rest[0], int(rest[1]), None if rest[2] == "default" else rest[2], repeats)
    else:
        raise SystemExit(f"unknown case {kind}")
    print(json.dumps({"seconds": sec, "peak_mb": _peak_mb()}))


def run_case(*args, threads=None, env_extra=None):
    env = dict(os.environ)
    if threads:
        env["NUMBA_NUM_THREADS"] = str(threads)
    env.update(env_extra or {})
    out = subprocess.run(
        [sys.executable, __file__, "--one", *map(str, args)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"case {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wall(cmd, repeats, env=None, cwd=None):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=cwd)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def settle():
    """Flush written files to disk and pause, so that the kernel's background
    writeback of earlier cases (gigabytes of TIFFs) does not run during the next."""
    os.sync()
    time.sleep(2)


def wall_interleaved(cmds, repeats):
    """Median wall time of each command, run in turn (a, b, a, b, ...) so that
    drifts of the machine's speed hit all of them alike."""
    times = [[] for _ in cmds]
    for _ in range(repeats):
        for i, cmd in enumerate(cmds):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def _quality(model, key):
    """Recorded test PSNR of a model (``pafu evaluate --record``), as text."""
    from pafu_cli.models.registry import resolve_model

    try:
        task, scale = key
        m = resolve_model(None if model == "default" else model, task, scale)
    except Exception:  # noqa: BLE001 - a benchmark label only
        return ""
    test = m.quality.get("test", {})
    if task == "demosaick":
        cells = [f"{k.split()[0]} {v:.2f}" for k, v in test.items() if k.endswith("b10")]
    else:
        cells = [f"{k} {v:.2f}" for k, v in test.items() if k in ("Set5", "Set14")]
    return ", ".join(cells) + (f" ({m.name})" if cells else m.name)


def readonly_package_check(tmp: Path, pafu: str, image: Path):
    """Numba's cache with the package on a read-only file system (needs root for the
    bind mount; returns [] otherwise): the first run compiles and caches under
    ``$XDG_CACHE_HOME/numba``, the second loads from there."""
    import pafu_cli

    if os.geteuid() != 0:
        return []
    src = tmp / "ro_src"
    mnt = tmp / "ro_pkg"
    cache = tmp / "ro_cache"
    import shutil

    from pafu_cli.models.registry import models_dir

    shutil.copytree(
        Path(pafu_cli.__file__).parent,
        src / "pafu_cli",
        ignore=shutil.ignore_patterns("__pycache__", "shipped_models"),
    )
    shutil.copytree(models_dir(), src / "models")  # where an uninstalled package looks
    # Bytecode compiled before the package becomes read-only, as pip does at install.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "pafu_cli")], check=True)
    mnt.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode:
        return []
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], check=True, capture_output=True)
        env = dict(os.environ, PYTHONPATH=str(mnt), XDG_CACHE_HOME=str(cache))
        env.pop("NUMBA_CACHE_DIR", None)
        # What the `pafu` console script runs (pafu_cli.cli:entry), from the read-only copy.
        cmd = [
            sys.executable,
            "-c",
            "import pafu_cli, sys; from pafu_cli.cli import entry; "
            f"assert pafu_cli.__file__.startswith({str(mnt)!r}), pafu_cli.__file__; entry()",
            "-q",
            "upscale",
            "-s",
            "2",
            "--overwrite",
            str(image),
            str(tmp / "ro_out.png"),
        ]
        out = []
        for label, n in (
            ("read-only package, first run (compiles into the user cache)", 1),
            ("read-only package, later runs (user cache warm; median of 3)", 3),
        ):
            t = wall(cmd, n, env=env, cwd=tmp)  # not the repository: python -c puts the cwd first
            out.append((f"{label}: pafu upscale -s 2 1 MP", t, len(list(cache.rglob("*.nbi")))))
        return out
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        return _one(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="6 MP instead of 24 MP, no scaling series")
    ap.add_argument(
        "--demosaick-models",
        default="default,bilinear",
        help="comma-separated models for the demosaick core rows",
    )
    ap.add_argument("--no-scaling", action="store_true", help="skip the 6/12/24/48 MP series")
    ap.add_argument("--no-big-upscale", action="store_true", help="skip the 24 MP x4 upscale")
    a = ap.parse_args()
    os.environ["PAFU_BENCH_REPEATS"] = str(a.repeats)
    sys.path.insert(0, str(HERE))
    from make_dng import write_dng

    tmp = Path(tempfile.mkdtemp(prefix="pafu_bench_"))
    h, w = (2000, 3000) if a.quick else (4000, 6000)
    mp = h * w / 1e6
    cfa = make_mosaic(Path(a.data), h, w)
    np.save(tmp / "cfa.npy", cfa)
    write_dng(tmp / "big.dng", cfa)
    settle()
    rows = []

    def row(name, r, out_mp, anchor=None, quality=""):
        ratio = f"{anchor['seconds'] / r['seconds']:.2f}x" if anchor else ""
        peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") else ""
        rows.append(
            f"| {name} | {r['seconds']:.3f} | {out_mp / r['seconds']:.1f} | {peak} | {ratio} | {quality} |"
        )
        print(rows[-1], flush=True)

    print(f"# {mp:.0f} MP demosaick, 1500x1000 upscale; median of {a.repeats}", flush=True)
    ahd = run_case("libraw", tmp / "big.dng", "AHD")
    row(f"LibRaw AHD (anchor), {mp:.0f} MP", ahd, mp, quality="Kodak24 37.10, McMaster 35.08 (ANCHORS.md)")
    lin = run_case("libraw", tmp / "big.dng", "LINEAR")
    row(f"LibRaw LINEAR, {mp:.0f} MP", lin, mp, ahd)
    for model in a.demosaick_models.split(","):
        r = run_case("demosaick", tmp / "cfa.npy", model)
        row(f"pafu demosaick core ({model}), {mp:.0f} MP", r, mp, ahd, _quality(model, ("demosaick", 1)))
    row(
        "pafu demosaick core (default), 1 thread",
        run_case("demosaick", tmp / "cfa.npy", "default", threads=1),
        mp,
        ahd,
    )
    if not (a.quick or a.no_scaling):
        for sh, sw in ((2000, 3000), (3000, 4000), (6000, 8000)):
            np.save(tmp / f"cfa_{sh}.npy", make_mosaic(Path(a.data), sh, sw))
            row(
                f"pafu demosaick core (default), {sh * sw / 1e6:.0f} MP",
                run_case("demosaick", tmp / f"cfa_{sh}.npy", "default"),
                sh * sw / 1e6,
                ahd,
            )

    # End to end: read, render, write a 16-bit TIFF, against rawpy + AHD + imageio.
    settle()
    e2e_ref = tmp / "e2e_ref.py"
    e2e_ref.write_text(
        "import sys, rawpy, imageio.v3 as iio\n"
        "with rawpy.imread(sys.argv[1]) as r:\n"
        "    rgb = r.postprocess(demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, output_bps=16)\n"
        "iio.imwrite(sys.argv[2], rgb)\n"
    )
    pafu = str(Path(sys.executable).parent / "pafu")
    # Both write over an existing file, as every run after the first does.
    n_e2e = max(9, 3 * a.repeats)
    t_ref, t_pafu = wall_interleaved(
        [
            [sys.executable, str(e2e_ref), str(tmp / "big.dng"), str(tmp / "ref.tif")],
            [
                pafu,
                "-q",
                "demosaick",
                "--overwrite",
                str(tmp / "big.dng"),
                str(tmp / "out.tif"),
                "--bits",
                "16",
            ],
        ],
        n_e2e,
    )
    ref = {"seconds": t_ref}
    row(f"end to end: rawpy AHD + imageio TIFF (anchor; median of {n_e2e}, runs alternating)", ref, mp)
    e2e = run_case("cli", "-q", "demosaick", "--overwrite", tmp / "big.dng", tmp / "out.tif", "--bits", "16")
    row(
        "end to end: pafu demosaick big.dng out.tif --bits 16",
        {"seconds": t_pafu, "peak_mb": e2e["peak_mb"]},
        mp,
        ref,
    )
    settle()

    import imageio.v3 as iio

    img = iio.imread(sorted((Path(a.data) / "Kodak24").glob("*.png"))[0])
    img = np.tile(img, (2, 2, 1))[:1000, :1500]
    np.save(tmp / "img.npy", np.ascontiguousarray(img))
    # A 1.5 MP upscale takes 0.1-0.3 s: more repeats than the long cases, against the
    # machine's noise (the same case varies by 2x from run to run here).
    short = {"PAFU_BENCH_REPEATS": str(max(9, a.repeats))}
    for s in (2, 3, 4):
        lz = run_case("upscale", tmp / "img.npy", s, "lanczos", env_extra=short)
        out_mp = 1.5 * s * s
        row(f"OpenCV INTER_LANCZOS4 x{s} (anchor)", lz, out_mp, quality="bicubic-like")
        row(
            f"pafu upscale x{s}",
            run_case("upscale", tmp / "img.npy", s, "default", env_extra=short),
            out_mp,
            lz,
            _quality("default", ("upscale", s)),
        )
        # the argmax model and the pafunet model, where shipped beside the blending default
        for other in (f"upscale_x{s}_fast", f"upscale_x{s}_high"):
            if other in list_models():
                row(
                    f"pafu upscale x{s} (`--model {other}`)",
                    run_case("upscale", tmp / "img.npy", s, other, env_extra=short),
                    out_mp,
                    lz,
                    _quality(other, ("upscale", s)),
                )

    # 1 MP upscale end to end (read, upscale, write PNG), Numba cache warm; and the first
    # run with an empty cache (JIT compilation).
    iio.imwrite(tmp / "one.png", np.tile(img, (1, 1, 1))[:1000, :1000])
    for s in (2, 3, 4):
        t = wall(
            [
                pafu,
                "-q",
                "upscale",
                "-s",
                str(s),
                "--overwrite",
                str(tmp / "one.png"),
                str(tmp / f"one_x{s}.png"),
            ],
            a.repeats,
        )
        row(f"end to end: pafu upscale -s {s} 1 MP PNG (cache warm)", {"seconds": t}, s * s)
    cold_env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "cold_cache"))
    t = wall(
        [pafu, "-q", "upscale", "-s", "2", "--overwrite", str(tmp / "one.png"), str(tmp / "one_c.png")],
        1,
        env=cold_env,
    )
    row("first run, empty Numba cache: pafu upscale -s 2 1 MP (JIT)", {"seconds": t}, 4)
    cold_env["NUMBA_CACHE_DIR"] = str(tmp / "cold_cache2")
    t = wall(
        [pafu, "-q", "demosaick", "--overwrite", str(tmp / "big.dng"), str(tmp / "cold.tif")], 1, env=cold_env
    )
    row(f"first run, empty Numba cache: pafu demosaick {mp:.0f} MP (JIT)", {"seconds": t}, mp)

    ro = readonly_package_check(tmp, pafu, tmp / "one.png")
    if ro:
        for label, sec, n in ro:
            row(label, {"seconds": sec}, 4)
            print(f"  ({n} cache index files in the user cache)", flush=True)

    if not (a.quick or a.no_big_upscale):  # 24 MP in, x4: 384 MP out, streamed to the file
        big = np.tile(img, (4, 4, 1))[:4000, :6000]
        iio.imwrite(tmp / "big.png", big)
        r = run_case("cli", "-q", "upscale", "-s", "4", "--overwrite", tmp / "big.png", tmp / "big_x4.tif")
        row("pafu upscale -s 4 24 MP PNG -> 384 MP TIFF (streamed)", r, 384)

    t0 = time.perf_counter()
    subprocess.run([pafu, "--help"], check=True, capture_output=True)
    rows.append(f"| pafu --help (start-up) | {time.perf_counter() - t0:.3f} | | | | |")

    print()
    print("| case | seconds | output MP/s | peak RSS MB | speed vs anchor | quality (recorded test PSNR) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""Peak memory and time of a huge upscale through dask arrays, zarr store to zarr store.

Usage::

    python benchmarks/dask_memory.py [--size 20000] [--scale 4] [--chunks 512]
        [--threads 2] [--folder DIR] [--keep] [--json FILE]

Needs ``pafu[dask]`` (dask, zarr). Writes a seeded ``--size`` x ``--size`` RGB
uint8 picture (smooth shading, discs, stripes, mild noise, made chunk by chunk)
into a zarr store in chunks of ``--chunks``, then, in a fresh process, runs::

    x = da.from_zarr(input store)
    y = pafu_cli.dask.quantise(pafu_cli.dask.upscale(x, scale), 8)
    da.to_zarr(y, output store)

with the threaded scheduler (``--threads`` workers, one Numba thread each) and
reports the process's peak resident memory (VmHWM) with what is held before the
computation, the wall-clock time and the output MP/s. The target (issue 24) is a
peak under 2 GB at 20 000 x 20 000 x4 (the output is 80 000 x 80 000 x 3 bytes,
19.2 GB, the input 1.2 GB). Finally a few output chunks are checked against
``pafu_cli.upscale`` on the matching input window (exact).

Disk: the stores go to ``--folder`` (default a temporary folder), removed at the
end unless ``--keep``; zarr compresses them (zstd).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _block(block_info=None):
    info = block_info[None]
    (y0, y1), (x0, x1) = info["array-location"][:2]
    rng = np.random.default_rng(y0 * 100003 + x0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(xx / 60 + c) * np.cos(yy / 85 - c) for c in (0.0, 1.0, 2.0)], axis=2)
    for cy in range(y0 // 300 * 300, y1 + 300, 300):  # a grid of discs, seamless across chunks
        for cx in range(x0 // 300 * 300, x1 + 300, 300):
            r = 60 + (cy * 7 + cx * 13) % 80
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = [(cy % 255) / 255, (cx % 255) / 255, 0.5]
    img[:, (np.arange(x0, x1) // 7) % 9 == 0] *= 0.6
    return (np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1) * 255).astype(np.uint8)


def make_input(path: Path, size: int, chunks: int) -> None:
    import dask
    import dask.array as da

    x = da.map_blocks(
        _block,
        dtype=np.uint8,
        chunks=((chunks,) * (size // chunks) + ((size % chunks,) if size % chunks else ()),) * 2 + ((3,),),
    )
    with dask.config.set(scheduler="threads"):
        da.to_zarr(x, str(path), overwrite=True)


def status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def child(src: str, dst: str, scale: int, threads: int) -> None:
    """The measured run, in its own process."""
    import dask
    import dask.array as da

    import pafu_cli.dask as pdask

    x = da.from_zarr(src)
    # Compile the kernels first (not part of the measure of the run's memory).
    pdask.upscale(x[:64, :64], scale).compute()
    held = status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    t = time.perf_counter()
    y = pdask.quantise(pdask.upscale(x, scale), 8)
    with dask.config.set(scheduler="threads", num_workers=threads):
        da.to_zarr(y, dst, overwrite=True)
    seconds = time.perf_counter() - t
    print(json.dumps({"held_kb": held, "peak_kb": status_kb("VmHWM"), "seconds": seconds}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    ap.add_argument("--chunks", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], a.child[1], int(a.child[2]), int(a.child[3]))
    import dask.array as da

    import pafu_cli

    work = Path(a.folder or tempfile.mkdtemp(prefix="pafu-dask-mem-", dir=str(Path.cwd())))
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / "in.zarr", work / f"out_x{a.scale}.zarr"
    t = time.perf_counter()
    make_input(src, a.size, a.chunks)
    print(f"input {a.size}x{a.size} written in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    env_cmd = [sys.executable, __file__, "--child", str(src), str(dst), str(a.scale), str(a.threads)]
    r = subprocess.run(
        env_cmd, capture_output=True, text=True, env={**__import__("os").environ, "NUMBA_NUM_THREADS": "1"}
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    m = json.loads(r.stdout.strip().splitlines()[-1])
    out_mp = (a.size * a.scale) ** 2 / 1e6
    disk = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file()) / 1e9
    x, y = da.from_zarr(str(src)), da.from_zarr(str(dst))
    checks = []
    for cy, cx in ((0, 0), (a.size // 2, a.size // 3), (a.size - 300, a.size - 300)):
        win = x[max(0, cy - 40) : cy + 340, max(0, cx - 40) : cx + 340].compute()
        want = pafu_cli.upscale(win, a.scale)
        oy, ox = (cy - max(0, cy - 40)) * a.scale, (cx - max(0, cx - 40)) * a.scale
        n = 200 * a.scale
        want8 = (np.rint(np.clip(want[oy : oy + n, ox : ox + n], 0, 1) * 255)).astype(np.uint8)
        got = y[cy * a.scale : cy * a.scale + n, cx * a.scale : cx * a.scale + n].compute()
        checks.append(bool(np.array_equal(got, want8[: got.shape[0], : got.shape[1]])))
    print(
        f"\n{a.size}x{a.size} RGB x{a.scale} -> {a.size * a.scale}x{a.size * a.scale} ({out_mp:.0f} MP), "
        f"chunks {a.chunks}, {a.threads} threads"
    )
    print(
        f"peak RSS {m['peak_kb'] / 1024:.0f} MB (held before the run {m['held_kb'] / 1024:.0f} MB); "
        f"{m['seconds']:.0f} s, {out_mp / m['seconds']:.1f} output MP/s; output store {disk:.1f} GB on disk"
    )
    print(f"sample windows equal to pafu_cli.upscale: {checks}")
    if a.json:
        Path(a.json).write_text(
            json.dumps({**m, "out_mp": out_mp, "disk_gb": disk, "checks": checks}, indent=1)
        )
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

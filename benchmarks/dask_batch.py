"""Throughput of a batch on a local Dask cluster against the same batch with ``-j``.

Usage::

    python benchmarks/dask_batch.py [--files 200] [--size 1632x1224] [--workers 2]
        [--command upscale|demosaick] [--folder DIR] [--json FILE]

Needs ``pafu[dask]``. Makes ``--files`` seeded RGB PNGs of ``--size`` (2 MP by
default: gradients, discs, stripes and mild noise, so that PNG coding costs what it
costs on photographs) in a temporary folder (``--folder`` to keep them), then runs,
each as its own ``pafu`` process, in turn:

* ``-j N``: the local process pool (N = ``--workers``);
* ``--scheduler local:N``: pafu starts a local cluster of N worker processes
  (its start-up is included);
* ``--scheduler tcp://...``: a cluster of N workers started by this script
  beforehand, as a user with a running cluster has (no start-up in the time).

``upscale`` runs ``pafu upscale -s 2`` (8 MP PNG outputs); ``demosaick`` runs
``pafu demosaick --pattern RGGB`` on 16-bit mosaics of the same size. Outputs of
the three runs are compared byte for byte. Prints wall-clock seconds, files/s and
the cluster's cost over ``-j``; the task sent per file is measured too (pickled
size of the job, paths and options).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int, h: int, w: int, command: str) -> None:
    from pafu_cli.cfa import mosaic
    from pafu_cli.io.images import write_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        base = np.stack(
            [
                0.5 + 0.4 * np.sin(xx / (40 + i % 17) + c) * np.cos(yy / (55 + i % 13) - c)
                for c in (0.0, 1.0, 2.0)
            ],
            axis=2,
        )
        for _ in range(6):  # discs with hard edges
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(40, 200)
            base[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
        base[:, (np.arange(w) // 7) % 9 == 0] *= 0.6  # stripes
        img = np.clip(base + rng.normal(0, 0.01, base.shape), 0, 1)
        if command == "demosaick":
            write_image(folder / f"img{i:04d}.png", (mosaic(img, "RGGB") * 65535).astype(np.uint16))
        else:
            write_image(folder / f"img{i:04d}.png", (img * 255).astype(np.uint8))


def run(args: list) -> tuple:
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "pafu_cli", "-q", *map(str, args)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"pafu failed: {r.stderr.strip()}")
    return time.perf_counter() - t


def same_outputs(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--size", default="1632x1224", help="WxH of each input")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--command", choices=["upscale", "demosaick"], default="upscale")
    ap.add_argument("--folder", default=None, help="work folder (kept); default a temporary one")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import distributed

    from pafu_cli.jobs.upscale import UpscaleOptions, upscale_file

    w, h = (int(v) for v in a.size.lower().split("x"))
    work = Path(a.folder or tempfile.mkdtemp(prefix="pafu-dask-batch-"))
    src = work / "in"
    if not src.exists():
        src.mkdir(parents=True)
        t = time.perf_counter()
        make_images(src, a.files, h, w, a.command)
        print(f"{a.files} inputs of {w}x{h} made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    cmd = ["upscale", "-s", "2"] if a.command == "upscale" else ["demosaick", "--pattern", "RGGB"]
    n = a.workers
    cluster = distributed.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # any free port: a second cluster must not clash on 8787
        silence_logs=logging.CRITICAL,
        env={"NUMBA_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n)), "OMP_WAIT_POLICY": "passive"},
    )
    runs = {
        f"-j {n}": ["-j", n],
        f"--scheduler local:{n} (start-up included)": ["--scheduler", f"local:{n}"],
        f"--scheduler tcp:// (running cluster of {n})": ["--scheduler", cluster.scheduler_address],
    }
    times, outs = {}, {}
    try:
        for i, (name, extra) in enumerate(runs.items()):
            out = work / f"out{i}"
            shutil.rmtree(out, ignore_errors=True)
            times[name] = run([*cmd, *extra, src, out])
            outs[name] = out
            print(f"{name}: {times[name]:.1f} s", file=sys.stderr)
    finally:
        cluster.close()
    first = next(iter(outs.values()))
    identical = all(same_outputs(first, o) for o in outs.values())
    opts = UpscaleOptions(scale=2)
    task = len(
        pickle.dumps((upscale_file, str(src / "img0000.png"), str(work / "out/img0000.png"), opts, False))
    )
    base = times[f"-j {n}"]
    print(f"\n{a.files} files of {w}x{h} ({a.command}), {n} workers, {os.cpu_count()} cores\n")
    print("| run | seconds | files/s | vs -j |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.1f} | {a.files / t:.2f} | {100 * (t / base - 1):+.1f}% |")
    print(f"\noutputs byte-identical: {identical}; task sent per file: {task} bytes (pickled)")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"times": times, "identical": identical, "task_bytes": task}, indent=1)
        )
    if a.folder is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Demosaick core time per megapixel with a reused (already touched) output array.

``benchmarks/speed.py`` allocates a fresh output per call, as a user's program does,
so its size series includes the kernel's first-touch cost of that memory (variable on
this machine: huge pages free or not). This script writes into one pre-touched
output per size to show how the computation itself scales (median of 3, same
mosaics as speed.py: tiled Kodak images).

Usage::

    python benchmarks/scaling_reused.py [--data ../shared/data]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from speed import make_mosaic

    from pafu_cli import demosaick
    from pafu_cli.models.registry import resolve_model

    m = resolve_model(None, "demosaick")
    print("| mosaic | seconds | ms per MP |")
    print("|---|---|---|")
    for h, w in ((2000, 3000), (3000, 4000), (4000, 6000), (6000, 8000)):
        cfa = make_mosaic(Path(a.data), h, w).astype(np.float32) / np.float32(65535)
        out = np.zeros((h, w, 3), np.float32)
        demosaick(cfa, "RGGB", model=m, out=out)
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            demosaick(cfa, "RGGB", model=m, out=out)
            ts.append(time.perf_counter() - t0)
        t = float(np.median(ts))
        print(f"| {h * w / 1e6:.0f} MP | {t:.3f} | {t / (h * w / 1e6) * 1000:.1f} |")


if __name__ == "__main__":
    main()

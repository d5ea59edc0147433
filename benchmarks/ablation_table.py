"""Markdown table of the ablation runs (benchmarks/ablation.sh): validation PSNR
(from each model's provenance; designs are chosen on it, never on test sets),
kernels in use on the validation images, and inference speed measured here, one
process, same 1 MP input for every model.

    python benchmarks/ablation_table.py [runs/ablation] [--data ../shared/data]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from pafu_cli import upscale
from pafu_cli.filters.pafu.model import load_model
from pafu_cli.training.data import list_images, read_rgb8, split_files

CHANGES = {
    "base": "base: 16 kernels 5x5, selector 3 layers x 16, decorrelation 1e-5, tau 1 -> 0.1, 1:3, k-means init, LS refit",
    "n8": "8 kernels",
    "n32": "32 kernels",
    "n64": "64 kernels, selector width 32",
    "k3": "all kernels 3x3",
    "k7": "all kernels 7x7",
    "mixed57": "8 x 5x5 + 8 x 7x7",
    "w8": "selector width 8",
    "w32": "selector width 32",
    "depth2": "selector 2 layers (3x3, 1x1)",
    "depth4": "selector 4 layers",
    "nodecor": "no decorrelation penalty",
    "decor1e-3": "decorrelation weight 1e-3 (10^2 x base)",
    "noalt": "no 1:3 alternation (joint updates)",
    "tau-const1": "temperature constant 1.0",
    "tau-2-0.05": "temperature 2.0 -> 0.05",
    "init-random": "no k-means init (near-identical starting kernels)",
    "norefit": "no least-squares refit",
}


def speed(model, x, repeats=7):
    upscale(x, 2, model=model)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        upscale(x, 2, model=model)
        ts.append(time.perf_counter() - t0)
    return x.shape[0] * x.shape[1] * 4 / np.median(ts) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default="runs/ablation")
    ap.add_argument("--data", default="../shared/data")
    a = ap.parse_args()
    x = np.random.default_rng(0).random((1000, 1000, 3), dtype=np.float32)
    files = list_images([Path(a.data) / "T91", Path(a.data) / "BSD200"])
    val_files = split_files(files)[1]
    print("| change from base | kernels in use | validation dB | output MP/s |")
    print("|---|---|---|---|")
    for name in CHANGES:
        p = Path(a.folder) / f"{name}.npz"
        if not p.exists():
            continue
        m = load_model(p)
        q = m.quality.get("validation", {})
        used = set()
        for f in val_files:
            im = read_rgb8(f)
            used |= set(np.unique(upscale(im[::2, ::2], 2, model=m, return_selection=True)[1]).tolist())
        print(
            f"| {CHANGES[name]} | {len(used)} of {m.n_kernels} | {q.get('val', float('nan')):.3f} | "
            f"{speed(m, x):.1f} |"
        )


if __name__ == "__main__":
    main()

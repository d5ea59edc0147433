"""Choose the default sigmas of ``pafu_cli.pac.jbu`` on synthetic validation data,
never on the depth test sets.

The validation set is :func:`pafu_cli.training.depth_data.validation_set`:
synthetic depth maps made on the held-out photos of the training data (T91 and
BSD200, every 10th file), 320 x 480 crops. Each depth map is scored like the P1
("bicubic") protocol of ``shared/data/depth/SOURCES.md``: the low-resolution
input is Pillow's float bicubic shrink of the map cropped to a multiple of s
(:func:`~pafu_cli.training.depth_data.degrade_bicubic`), the method upsamples it
guided by the synthetic guide, and the score is the RMSE in levels of the output
clipped to [0, 255], averaged over the pictures (mean of per-picture RMSE).

The grid is ``--spatial`` x ``--range`` with radius 2, and radius 3 as well for
sigma_spatial >= ``--radius3-from``; plain bicubic upsampling
(``pafu_cli.pac.resize``) is the reference. It prints one table per scale with
the best setting, then the best single setting over all scales: the smallest sum
over the scales of RMSE / bicubic RMSE.

    python tools/calibrate/jbu_params.py          # about 4 minutes on 2 cores

The shipped defaults are the keyword defaults of ``pafu_cli.filters.pac.resample.jbu``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("PAFU_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def rmse(out: np.ndarray, target: np.ndarray) -> float:
    """RMSE in levels, both clipped to [0, 255], computed in float64."""
    a = np.clip(np.asarray(out, np.float64), 0, 255)
    b = np.clip(np.asarray(target, np.float64), 0, 255)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def settings(spatial, ranges, radius3_from):
    """The grid: (sigma_spatial, radius, sigma_range) triples."""
    out = []
    for ss in spatial:
        for radius in (2.0, 3.0) if ss >= radius3_from else (2.0,):
            out += [(ss, radius, sr) for sr in ranges]
    return out


def _degrade(pair, s):
    """(low-res map, mask or None, guide, target) of one validation pair at scale s.
    Clean pairs: the P1 protocol (Pillow bicubic shrink). Noisy pairs (guide, noisy,
    clean, valid): a low-resolution sensor, every s-th noisy sample (the centre of
    its footprint) with its holes, scored against the clean map."""
    from pafu_cli.training.depth_data import degrade_bicubic

    if len(pair) == 2:
        guide, depth = pair
        lr, hr = degrade_bicubic(depth, s)
        return lr, None, np.ascontiguousarray(guide[: hr.shape[0], : hr.shape[1]]), hr
    guide, noisy, clean, valid = pair
    h, w = clean.shape[0] - clean.shape[0] % s, clean.shape[1] - clean.shape[1] % s
    c = (s - 1) // 2
    lr = np.ascontiguousarray(noisy[c:h:s, c:w:s])
    mask = valid[c:h:s, c:w:s].astype(np.float32)
    return lr, mask, np.ascontiguousarray(guide[:h, :w]), clean[:h, :w]


def measure(pairs, scales, grid):
    """Per scale: the bicubic per-picture RMSE (n,) and the JBU ones (len(grid), n)."""
    from pafu_cli import pac

    bicubic = {s: np.zeros(len(pairs)) for s in scales}
    jbu = {s: np.zeros((len(grid), len(pairs))) for s in scales}
    for i, pair in enumerate(pairs):
        for s in scales:
            lr, mask, g, hr = _degrade(pair, s)
            out = pac.resize(lr, hr.shape, "bicubic", mask=mask)
            bicubic[s][i] = rmse(out if mask is None else out[0], hr)
            for j, (ss, radius, sr) in enumerate(grid):
                out = pac.jbu(lr, g, sigma_spatial=ss, sigma_range=sr, radius=radius, mask=mask)
                jbu[s][j, i] = rmse(out if mask is None else out[0], hr)
    return bicubic, jbu


def label(setting) -> str:
    ss, radius, sr = setting
    return f"ss={ss:g} r={radius:g} sr={sr:g}"


def report(scales, grid, ranges, bicubic, jbu, current):
    """Print the tables; return the summary as a dict."""
    rows = sorted({(ss, radius) for ss, radius, _ in grid})
    summary = {"scales": {}, "grid": [list(g) for g in grid]}
    for s in scales:
        mean = jbu[s].mean(axis=1)
        b = bicubic[s].mean()
        print(f"\nx{s}: mean RMSE (levels) over {bicubic[s].size} pictures; bicubic {b:.3f}")
        print("ss    radius " + "".join(f"{f'sr={sr:g}':>9}" for sr in ranges))
        for ss, radius in rows:
            cells = []
            for sr in ranges:
                j = grid.index((ss, radius, sr)) if (ss, radius, sr) in grid else None
                cells.append(f"{mean[j]:9.3f}" if j is not None else " " * 9)
            print(f"{ss:<5g} {radius:<6g} " + "".join(cells))
        best = int(np.argmin(mean))
        wins = float(np.mean(jbu[s][best] < bicubic[s]))
        print(
            f"best x{s}: {label(grid[best])}  RMSE {mean[best]:.3f} ({mean[best] / b:.3f} x bicubic; "
            f"better than bicubic on {wins:.0%} of the pictures)"
        )
        if current in grid:
            c = grid.index(current)
            print(f"current default {label(current)}: {mean[c]:.3f} ({mean[c] / b:.3f} x bicubic)")
        summary["scales"][str(s)] = {
            "bicubic": float(b),
            "jbu": [float(v) for v in mean],
            "best": list(grid[best]),
        }
    rel = sum(jbu[s].mean(axis=1) / bicubic[s].mean() for s in scales)
    order = np.argsort(rel)
    print(f"\nover x{', x'.join(map(str, scales))}: sum of RMSE / bicubic RMSE (lower is better), best 8")
    for j in order[:8]:
        per = "  ".join(f"x{s} {jbu[s][j].mean():.3f}" for s in scales)
        print(f"  {label(grid[j]):<24} {rel[j]:.4f}   {per}")
    if current in grid:
        c = grid.index(current)
        print(f"  current default {label(current)}: {rel[c]:.4f}")
    best = grid[int(order[0])]
    print(f"best single setting: {label(best)}")
    summary["overall"] = {"best": list(best), "sum_relative": [float(v) for v in rel]}
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        nargs="+",
        default=[str(SHARED / "data" / "T91"), str(SHARED / "data" / "BSD200")],
        help="training image folders (default: T91 and BSD200 in $PAFU_SHARED/data, else ../shared/data "
        "next to the repository); only their validation split is used",
    )
    ap.add_argument("-n", "--pictures", type=int, default=30, help="validation pairs (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="validation set seed (default: %(default)s)")
    ap.add_argument(
        "--size", type=int, nargs=2, default=(320, 480), metavar=("H", "W"), help="crop (default: 320 480)"
    )
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 8, 16], help="default: 4 8 16")
    ap.add_argument(
        "--spatial",
        type=float,
        nargs="+",
        default=[0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0],
        help="sigma_spatial values, low-res pixels (default: 0.25 0.35 0.5 0.75 1 1.5 2)",
    )
    ap.add_argument(
        "--range",
        type=float,
        nargs="+",
        default=[0.02, 0.04, 0.06, 0.08, 0.12, 0.2, 0.4],
        help="sigma_range values, guide full scale (default: 0.02 0.04 0.06 0.08 0.12 0.2 0.4)",
    )
    ap.add_argument(
        "--radius3-from",
        type=float,
        default=1.5,
        help="also try radius 3 for sigma_spatial >= this (default: %(default)s)",
    )
    ap.add_argument(
        "--noisy",
        action="store_true",
        help="a noisy low-resolution sensor instead of P1: every s-th sample of the synthetic noisy map "
        "(depth-dependent noise, quantisation, holes at edges), scored against the clean map",
    )
    ap.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    import inspect

    from pafu_cli import pac
    from pafu_cli.training.depth_data import validation_set

    defaults = inspect.signature(pac.jbu).parameters
    current = tuple(float(defaults[k].default) for k in ("sigma_spatial", "radius", "sigma_range"))
    grid = settings(args.spatial, args.range, args.radius3_from)
    t0 = time.perf_counter()
    size = tuple(args.size)
    pairs = validation_set(args.data, n=args.pictures, seed=args.seed, size=size, noise=args.noisy)
    t1 = time.perf_counter()
    print(
        f"{len(pairs)} synthetic validation pairs of {args.size[0]} x {args.size[1]} in {t1 - t0:.1f} s; "
        f"{len(grid)} settings x {len(args.scales)} scales"
    )
    bicubic, jbu = measure(pairs, args.scales, grid)
    t2 = time.perf_counter()
    print(f"scored in {t2 - t1:.1f} s")
    summary = report(args.scales, grid, args.range, bicubic, jbu, current)
    if args.json:
        summary.update(pictures=len(pairs), seed=args.seed, size=list(args.size), seconds=round(t2 - t0, 1))
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()

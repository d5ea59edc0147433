"""How strongly do a data set's colour channels move together? A data diagnostic.

A linear demosaicker learns how much it may borrow from the green samples to
fill in red and blue; that depends on how correlated the channels' local
contrast is in the pictures it was trained on. This script cuts every picture of
each folder into 32 x 32 tiles, high-passes each channel (the difference from
its 3 x 3 mean), and measures per textured tile (RMS high-pass above 2 grey
levels) the correlation between red and green and between blue and green,
keeping the smaller. It prints the share of tiles below 0.5 (colours that do not
move together, or move against each other, as between a red and a green object)
and quantiles of the statistic.

    python benchmarks/colour_stats.py ../shared/data/T91 ../shared/data/BSD200 \\
        ../shared/data/Kodak24 ../shared/data/McMaster
    python benchmarks/colour_stats.py --regions ../shared/data/T91   # as recolour_regions makes them

Use it to see whether your training pictures cover the pictures you will
demosaick. It reads pictures; it fits nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pafu_cli.training.data import list_images, read_rgb8, recolour_regions, saturate8

TILE = 32


def tile_correlation(im8: np.ndarray, tile: int = TILE):
    """Per tile: min(corr(R, G), corr(B, G)) of the channels' 3x3 high-pass, and
    the tile's RMS high-pass (grey levels); arrays of shape (rows, cols)."""
    g = im8.astype(np.float64)
    p = np.pad(g, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = g.shape[:2]
    box = sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9
    hp = g - box
    th, tw = h // tile, w // tile
    t = hp[: th * tile, : tw * tile].reshape(th, tile, tw, tile, 3).transpose(0, 2, 1, 3, 4)
    t = t.reshape(th, tw, tile * tile, 3)
    t = t - t.mean(axis=2, keepdims=True)
    e = (t**2).sum(axis=2)

    def corr(a, b):
        return (t[..., a] * t[..., b]).sum(-1) / np.sqrt(e[..., a] * e[..., b] + 1e-9)

    return np.minimum(corr(0, 1), corr(2, 1)), np.sqrt(e.mean(-1) / tile**2)


def folder_stats(folder, transform=None, min_rms: float = 2.0) -> np.ndarray:
    """The statistic of every textured tile of the pictures in ``folder``."""
    out = []
    for i, f in enumerate(list_images([folder])):
        im = read_rgb8(f)
        if transform is not None:
            im = transform(im, i)
        c, rms = tile_correlation(im)
        out.append(c[rms > min_rms])
    return np.concatenate(out) if out else np.zeros(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--saturation", type=float, default=1.0, help="scale the pictures' saturation first")
    ap.add_argument("--regions", action="store_true", help="recolour the pictures per region first")
    a = ap.parse_args()

    def transform(im, i):
        im = saturate8(im, a.saturation)
        return recolour_regions(im, i) if a.regions else im

    what = (f", saturation x{a.saturation:g}" if a.saturation != 1 else "") + (
        ", regions" if a.regions else ""
    )
    print(f"| pictures{what} | textured tiles | below 0.5 | 5% | 10% | 25% | median |")
    print("|---|---|---|---|---|---|---|")
    for folder in a.folders:
        s = folder_stats(folder, transform)
        q = np.quantile(s, [0.05, 0.1, 0.25, 0.5]) if s.size else [np.nan] * 4
        print(
            f"| {Path(folder).name} | {s.size} | {100 * np.mean(s < 0.5):.1f}% | "
            + " | ".join(f"{v:.2f}" for v in q)
            + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()

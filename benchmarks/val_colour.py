"""Validation CPSNR of demosaick models on plain and colour-saturated images.

McMaster-like scenes (saturated, weakly correlated colours) are rare in the
training photos. To choose designs for them without looking at the test sets,
this scores models on the held-out tenth of the training data (the same split
``pafu train`` validates on) twice: as it is, and with every image's
saturation multiplied by ``--saturation`` around its per-pixel grey (clipped),
which weakens the inter-channel correlation the way McMaster's colours do.

    python benchmarks/val_colour.py default demosaick_vivid runs/x.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from pafu_cli.bayer import mosaic
from pafu_cli.demosaick import demosaick
from pafu_cli.metrics import cpsnr, to_uint8
from pafu_cli.models import resolve_model
from pafu_cli.training.data import list_images, read_rgb8, scale_saturation, split_files


def saturate(im8: np.ndarray, factor: float) -> np.ndarray:
    """uint8 RGB with saturation scaled by ``factor`` around the channel mean."""
    return np.rint(scale_saturation(im8.astype(np.float32), factor, 255)).astype(np.uint8)


def score(model, images, factor: float) -> float:
    out = []
    for im in images:
        h, w = im.shape[0] // 2 * 2, im.shape[1] // 2 * 2
        gt = im[:h, :w] if factor == 1 else saturate(im[:h, :w], factor)
        rgb = demosaick(mosaic(gt.astype(np.float32) / 255, "RGGB"), "RGGB", model)
        out.append(cpsnr(to_uint8(rgb), gt))
    return float(np.mean(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="model names or .npz paths")
    ap.add_argument("--data", nargs="+", default=["../shared/data/T91", "../shared/data/BSD200"])
    ap.add_argument("--saturation", type=float, default=2.0)
    ap.add_argument("--val-every", type=int, default=10)
    a = ap.parse_args()
    _, val = split_files(list_images(a.data), a.val_every)
    images = [read_rgb8(f) for f in val]
    print(f"| model | validation b10 ({len(images)} images) | saturation x{a.saturation:g} |")
    print("|---|---|---|")
    for name in a.models:
        m = resolve_model(None if name == "default" else name, task="demosaick")
        print(f"| {name} | {score(m, images, 1.0):.3f} | {score(m, images, a.saturation):.3f} |", flush=True)


if __name__ == "__main__":
    main()

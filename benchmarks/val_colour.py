"""Validation CPSNR of demosaick models on plain and colour-saturated images.

McMaster-like scenes (saturated, weakly correlated colours) are rare in the
training photos. To choose designs for them without looking at the test sets,
this scores models on the held-out tenth of the training data (the same split
``pafu train`` validates on) twice: as it is, and with every image's
saturation multiplied by ``--saturation`` around its per-pixel grey (clipped),
which weakens the inter-channel correlation the way McMaster's colours do, and
(``--regions``) with every image recoloured per random region
(``training.data.recolour_regions``: colours that jump independently across
region borders, as between objects of different hue; McMaster's pictures are full
of such edges, the training photos almost never show them).

    python benchmarks/val_colour.py default demosaick_vivid runs/x.npz
    python benchmarks/val_colour.py default demosaick_vivid --regions
    python benchmarks/val_colour.py demosaick_denoise_s5 --sigma 5   # noisy mosaics

``--sigma`` adds the evaluation's Gaussian noise to the mosaics
(``evaluate.noisy_mosaic``, 0..255 units), for the denoising members.
"""

from __future__ import annotations

import argparse

import numpy as np

from pafu_cli.demosaick import demosaick
from pafu_cli.evaluation.metrics import cpsnr, to_uint8
from pafu_cli.evaluation.protocols import noisy_mosaic
from pafu_cli.models.registry import resolve_model
from pafu_cli.training.data import list_images, read_rgb8, split_files, validation_picture


def score(model, images, factor: float, sigma: float = 0.0, regions: bool = False) -> float:
    out = []
    for i, im in enumerate(images):
        gt = validation_picture(im, i, factor, regions)
        rgb = demosaick(noisy_mosaic(gt, sigma, i), "RGGB", model)
        out.append(cpsnr(to_uint8(rgb), gt))
    return float(np.mean(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="model names or .npz paths")
    ap.add_argument("--data", nargs="+", default=["../shared/data/T91", "../shared/data/BSD200"])
    ap.add_argument("--saturation", type=float, default=2.0)
    ap.add_argument("--val-every", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=0.0, help="mosaic noise, 0..255 units")
    ap.add_argument("--regions", action="store_true", help="a third column: recoloured per region")
    a = ap.parse_args()
    _, val = split_files(list_images(a.data), a.val_every)
    images = [read_rgb8(f) for f in val]
    noise = f", sigma {a.sigma:g}" if a.sigma else ""
    print(
        f"| model | validation b10 ({len(images)} images{noise}) | saturation x{a.saturation:g} |"
        + (" regions |" if a.regions else "")
    )
    print("|---|---|---|" + ("---|" if a.regions else ""))
    for name in a.models:
        m = resolve_model(None if name == "default" else name, task="demosaick")
        cells = [score(m, images, 1.0, a.sigma), score(m, images, a.saturation, a.sigma)]
        if a.regions:
            cells.append(score(m, images, 1.0, a.sigma, regions=True))
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |", flush=True)


if __name__ == "__main__":
    main()

"""Validation CPSNR of demosaick models on plain and colour-saturated images.

McMaster-like scenes (saturated, weakly correlated colours) are rare in the
training photos. To choose designs for them without looking at the test sets,
this scores models on the held-out tenth of the training data (the same split
``pafu train`` validates on) twice: as it is, and with every image's
saturation multiplied by ``--saturation`` around its per-pixel grey (clipped),
which weakens the inter-channel correlation the way McMaster's colours do, and
(``--regions``) with every image recoloured per random region
(``recolour_regions`` of ``pafu_cli.training.data``: colours that jump
independently across region borders, as between objects of different hue;
McMaster's pictures are full of such edges, the training photos almost never
show them).

    python tools/calibrate/val_colour.py default demosaick_vivid runs/x.npz
    python tools/calibrate/val_colour.py default demosaick_vivid --regions
    python tools/calibrate/val_colour.py demosaick_denoise_s5 --sigma 5   # noisy mosaics

``--sigma`` adds the evaluation's Gaussian noise to the mosaics (``noisy_mosaic``
of ``pafu_cli.evaluation.protocols``, 0..255 units), for the denoising members.
The ``val_saturation_x2`` figures in the shipped models' provenance come from here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from pafu_cli.demosaick import demosaick
from pafu_cli.evaluation.metrics import cpsnr, to_uint8
from pafu_cli.evaluation.protocols import noisy_mosaic
from pafu_cli.models.registry import resolve_model
from pafu_cli.training.data import list_images, read_rgb8, split_files, validation_picture

SHARED = Path(os.environ.get("PAFU_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def score(model, images, factor: float, sigma: float = 0.0, regions: bool = False) -> float:
    out = []
    for i, im in enumerate(images):
        gt = validation_picture(im, i, factor, regions)
        rgb = demosaick(noisy_mosaic(gt, sigma, i), "RGGB", model)
        out.append(cpsnr(to_uint8(rgb), gt))
    return float(np.mean(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model names ('default' for the shipped default) or .npz paths")
    ap.add_argument(
        "--data",
        nargs="+",
        default=[str(SHARED / "data" / "T91"), str(SHARED / "data" / "BSD200")],
        help="training image folders; every --val-every-th image is used (default: T91 and BSD200 "
        "in $PAFU_SHARED/data, else ../shared/data next to the repository)",
    )
    ap.add_argument("--saturation", type=float, default=2.0, help="saturation factor (default: %(default)s)")
    ap.add_argument("--val-every", type=int, default=10, help="validation split rule (default: %(default)s)")
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

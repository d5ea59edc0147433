"""Choose the colourfulness threshold of ``--colours auto`` on validation images.

``pafu demosaick`` can pick, per picture, between the default demosaick model
and ``demosaick_vivid`` (trained for saturated colours) by a colourfulness
statistic of the white-balanced mosaic (``mosaic_colourfulness``). This
script measures, on the held-out tenth of the training data (the split
``pafu train`` validates on) at several saturation factors (x1 is the plain
image; larger factors make McMaster-like scenes, as ``val_colour.py`` does),
the statistic and both models' CPSNR b10 per image, and reports the threshold
that maximises the mean CPSNR over all of them. Never the test sets.

    python tools/calibrate/colour_pick.py [--factors 1 1.5 2] [--plain default]
    python tools/calibrate/colour_pick.py --regions   # also the pictures recoloured per region
    python tools/calibrate/colour_pick.py --sigma 5 --plain demosaick_denoise_s5 \\
        --vivid demosaick_vivid_denoise_s5

``--sigma`` adds the evaluation's mosaic noise (``noisy_mosaic`` of
``pafu_cli.evaluation.protocols``), for the threshold between a denoising member
and its vivid twin. The shipped threshold is ``VIVID_COLOURFULNESS`` in
``pafu_cli/models/choice.py``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from pafu_cli.demosaick import demosaick
from pafu_cli.evaluation.metrics import cpsnr, to_uint8
from pafu_cli.evaluation.protocols import noisy_mosaic
from pafu_cli.models.choice import mosaic_colourfulness
from pafu_cli.models.registry import resolve_model
from pafu_cli.training.data import list_images, read_rgb8, split_files, validation_picture

SHARED = Path(os.environ.get("PAFU_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def rows(images, factors, plain, vivid, sigma=0.0):
    """(factor, statistic, CPSNR plain model, CPSNR vivid model) per image and factor;
    a factor of -1 stands for the picture recoloured per region (``recolour_regions``)."""
    out = []
    for f in factors:
        for i, im in enumerate(images):
            gt = validation_picture(im, i, 1.0, regions=True) if f == -1 else validation_picture(im, i, f)
            cfa = noisy_mosaic(gt, sigma, i)
            s = mosaic_colourfulness(cfa, "RGGB")
            a = cpsnr(to_uint8(demosaick(cfa, "RGGB", plain)), gt)
            b = cpsnr(to_uint8(demosaick(cfa, "RGGB", vivid)), gt)
            out.append((f, s, a, b))
    return np.array(out)


def best_threshold(r):
    """Threshold t (vivid where statistic > t) maximising the mean CPSNR, and that mean."""
    cands = np.concatenate([[-np.inf], np.sort(r[:, 1]), [np.inf]])
    means = [np.where(r[:, 1] > t, r[:, 3], r[:, 2]).mean() for t in cands]
    i = int(np.argmax(means))
    if 0 < i < len(cands) - 1:  # middle of the gap between two statistics
        t = 0.5 * (cands[i] + cands[i + 1]) if np.isfinite(cands[i + 1]) else cands[i]
    else:
        t = cands[i]
    return float(t), float(means[i])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        nargs="+",
        default=[str(SHARED / "data" / "T91"), str(SHARED / "data" / "BSD200")],
        help="training image folders; every --val-every-th image is used (default: T91 and BSD200 "
        "in $PAFU_SHARED/data, else ../shared/data next to the repository)",
    )
    ap.add_argument(
        "--factors",
        nargs="+",
        type=float,
        default=[1.0, 1.5, 2.0],
        help="saturation factors (default: 1 1.5 2)",
    )
    ap.add_argument(
        "--regions",
        action="store_true",
        help="also the pictures recoloured per region (val_colour.py --regions)",
    )
    ap.add_argument("--plain", default="default", help="the natural model (default: the shipped default)")
    ap.add_argument("--vivid", default="demosaick_vivid", help="its vivid twin (default: %(default)s)")
    ap.add_argument("--val-every", type=int, default=10, help="validation split rule (default: %(default)s)")
    ap.add_argument("--sigma", type=float, default=0.0, help="mosaic noise, 0..255 units")
    ap.add_argument(
        "--threshold", type=float, default=None, help="also score this threshold (e.g. the shipped one)"
    )
    a = ap.parse_args()
    _, val = split_files(list_images(a.data), a.val_every)
    images = [read_rgb8(f) for f in val]
    plain = resolve_model(None if a.plain == "default" else a.plain, "demosaick")
    vivid = resolve_model(a.vivid, "demosaick")
    factors = a.factors + ([-1.0] if a.regions else [])
    r = rows(images, factors, plain, vivid, a.sigma)
    t, best = best_threshold(r)
    noise = f", sigma {a.sigma:g}" if a.sigma else ""
    print(
        f"{len(images)} validation images x saturation {a.factors}{' and regions' if a.regions else ''}"
        f"{noise}: {len(r)} pictures"
    )
    print("| saturation | statistic (median) | plain model | vivid model | oracle | pick at t |")
    print("|---|---|---|---|---|---|")
    ts = [t] + ([a.threshold] if a.threshold is not None else [])
    for f in factors + [None]:
        sel = r if f is None else r[r[:, 0] == f]
        picks = " / ".join(f"{np.where(sel[:, 1] > x, sel[:, 3], sel[:, 2]).mean():.3f}" for x in ts)
        label = "all" if f is None else "regions" if f == -1 else f"x{f:g}"
        print(
            f"| {label} | {np.median(sel[:, 1]):.3f} | {sel[:, 2].mean():.3f} | "
            f"{sel[:, 3].mean():.3f} | {np.maximum(sel[:, 2], sel[:, 3]).mean():.3f} | {picks} |"
        )
    print(
        f"best threshold t = {t:.4f} (mean {best:.3f} dB); vivid chosen for "
        f"{int((r[:, 1] > t).sum())} of {len(r)} pictures"
    )


if __name__ == "__main__":
    main()

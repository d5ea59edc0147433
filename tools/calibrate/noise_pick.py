"""Choose ``NOISE_PICK_SCALE`` on validation images, never on the test sets.

For every held-out image of the training data (the split ``pafu train``
validates on) and every noise level of a grid (Gaussian on the RGGB mosaic,
0..255 units), this scores the noise-free model and each denoising family
member (CPSNR, no border, like ``pafu train``'s validation) and the noise
estimate of the noisy mosaic (``noise_level``). It then prints, for a
range of pick scales, the mean CPSNR that ``--denoise on`` and ``--denoise
auto`` would give with it, per noise level and averaged over the grid, beside
the members alone and an oracle that knows each picture's best member.

    python tools/calibrate/noise_pick.py            # about 1 minute on one core

The shipped scale is ``NOISE_PICK_SCALE`` in ``pafu_cli/models/choice.py``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from pafu_cli.demosaick import demosaick
from pafu_cli.evaluation.metrics import cpsnr, to_uint8
from pafu_cli.evaluation.protocols import noisy_mosaic
from pafu_cli.models.choice import NOISE_PICK_SCALE, denoise_family, noise_level, pick_denoise_model
from pafu_cli.models.registry import DEFAULT_MODELS, resolve_model
from pafu_cli.training.data import list_images, read_rgb8, split_files

SHARED = Path(os.environ.get("PAFU_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def measure(images, sigmas):
    """Per (image, sigma): the noise estimate and each candidate's CPSNR."""
    names = [DEFAULT_MODELS[("demosaick", 1)]] + [n for _, n in denoise_family()]
    cands = [resolve_model(n, "demosaick") for n in names]
    rows = []
    for i, im in enumerate(images):
        h, w = im.shape[0] // 2 * 2, im.shape[1] // 2 * 2
        gt = im[:h, :w]
        for s in sigmas:
            cfa = noisy_mosaic(gt, s, i)
            psnr = {m.name: cpsnr(to_uint8(demosaick(cfa, "RGGB", m)), gt) for m in cands}
            rows.append((s, noise_level(cfa), psnr))
    return names, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        nargs="+",
        default=[str(SHARED / "data" / "T91"), str(SHARED / "data" / "BSD200")],
        help="training image folders; every --val-every-th image is used (default: T91 and BSD200 "
        "in $PAFU_SHARED/data, else ../shared/data next to the repository)",
    )
    ap.add_argument("--val-every", type=int, default=10, help="validation split rule (default: %(default)s)")
    ap.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15],
        help="noise grid, 0..255 units (default: 0..15)",
    )
    ap.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[0.5, 0.55, 0.58, 0.6, 0.62, 0.64, 0.66, 0.68, 0.7, 0.75, 0.8, 1.0],
        help="candidate pick scales (default: 0.5..1)",
    )
    a = ap.parse_args()
    _, val = split_files(list_images(a.data), a.val_every)
    names, rows = measure([read_rgb8(f) for f in val], a.sigmas)
    sig = list(a.sigmas)
    clean = names[0]

    def table(label, choose):
        per = {s: [] for s in sig}
        for s, est, psnr in rows:
            per[s].append(psnr[choose(est, psnr)])
        means = [float(np.mean(per[s])) for s in sig]
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in means) + f" | {np.mean(means):.3f} |")
        return float(np.mean(means))

    print(
        f"{len(val)} validation images; median estimate x255 per sigma: "
        + ", ".join(f"{s:g}: {255 * np.median([e for t, e, _ in rows if t == s]):.1f}" for s in sig)
    )
    print("\n| pick | " + " | ".join(f"{s:g}" for s in sig) + " | mean |")
    print("|---|" + "---|" * (len(sig) + 1))
    for n in names:
        table(n, lambda e, p, n=n: n)
    score = {sc: 0.0 for sc in a.scales}
    for mode, allow in (("on", False), ("auto", True)):
        pool = [n for n in names if allow or n != clean]
        table(f"{mode}: oracle", lambda e, p, pool=pool: max(pool, key=p.get))
        for sc in a.scales:
            score[sc] += (
                table(
                    f"{mode}: scale {sc:g}",
                    lambda e, p, sc=sc, allow=allow: pick_denoise_model(e, allow_clean=allow, scale=sc).name,
                )
                / 2
            )
    best = max(a.scales, key=score.get)
    print(
        f"\nbest scale (mean of on and auto over the grid): {best:g} ({score[best]:.3f} dB); "
        f"shipped NOISE_PICK_SCALE {NOISE_PICK_SCALE:g}"
    )


if __name__ == "__main__":
    main()

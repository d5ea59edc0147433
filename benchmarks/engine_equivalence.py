"""The banded engine against the layer-by-layer engine on the standard test sets.

The banded engine (pafu_cli._band) sums in another order than the original
layer-by-layer engine (pafu_cli._kernels), so its outputs are not the same
bits. This script measures the difference where it matters: selections that
changed, the largest output difference, 8-bit values that changed and the
PSNR of both on every test set, for the shipped default models.

Usage::

    python benchmarks/engine_equivalence.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pafu_cli import engine
from pafu_cli.bayer import mosaic, to_packed_rggb
from pafu_cli.demosaick import receptive_margin
from pafu_cli.evaluate import GREY_IMAGES, _images
from pafu_cli.metrics import cpsnr, to_uint8, y_psnr
from pafu_cli.models import resolve_model
from pafu_cli.resize import imresize, modcrop

HERE = Path(__file__).resolve().parent


def _demosaick_pair(m, cfa):
    pad = 2 * receptive_margin(m)
    packed, (top, left) = to_packed_rggb(cfa, "RGGB", pad)
    old, iold = engine._run_layers(m, packed, cfa.shape, (top, left))
    new, inew = engine.run_mosaic(m, cfa, "RGGB", pad)
    return old, new, iold, inew


def _upscale_pair(m, lr):
    x = np.ascontiguousarray(lr, dtype=np.float32)
    old, iold = engine._run_layers(m, x, None, (0, 0))
    new, inew = engine.run(m, x)
    return old, new, iold, inew


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    a = ap.parse_args()
    root = Path(a.data)
    print("| model | set | selections changed | max abs diff | 8-bit values changed | PSNR layer engine | PSNR banded |")
    print("|---|---|---|---|---|---|---|")
    m = resolve_model(None, "demosaick")
    for s in ("Kodak24", "McMaster"):
        sel = diff = changed = n = 0
        p_old, p_new = [], []
        for name, im in _images(root / s):
            cfa = mosaic(im.astype(np.float32) / 255, "RGGB")
            old, new, iold, inew = _demosaick_pair(m, cfa)
            sel += int(np.sum(iold != inew))
            diff = max(diff, float(np.abs(old - new).max()))
            o8, n8 = to_uint8(old), to_uint8(new)
            changed += int(np.sum(o8 != n8))
            n += o8.size
            p_old.append(cpsnr(o8, im, 10))
            p_new.append(cpsnr(n8, im, 10))
        print(f"| {m.name} | {s} | {sel} | {diff:.2e} | {changed} of {n} | {np.mean(p_old):.4f} | {np.mean(p_new):.4f} |")
    for scale in (2, 3, 4):
        m = resolve_model(None, "upscale", scale)
        for s in ("Set5", "Set14"):
            sel = diff = changed = n = 0
            p_old, p_new = [], []
            for name, im in _images(root / s):
                hr = modcrop(im, scale)
                lr = imresize(hr, 1.0 / scale).astype(np.float32) / 255
                old, new, iold, inew = _upscale_pair(m, lr)
                sel += int(np.sum(iold != inew))
                diff = max(diff, float(np.abs(old - new).max()))
                o8, n8 = to_uint8(old), to_uint8(new)
                changed += int(np.sum(o8 != n8))
                n += o8.size
                gt = hr.astype(np.float64) / 255
                p_old.append(y_psnr(old, gt, scale, grey=name in GREY_IMAGES))
                p_new.append(y_psnr(new, gt, scale, grey=name in GREY_IMAGES))
            print(f"| {m.name} | {s} | {sel} | {diff:.2e} | {changed} of {n} | {np.mean(p_old):.4f} | "
                  f"{np.mean(p_new):.4f} |")


if __name__ == "__main__":
    main()

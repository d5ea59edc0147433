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

from pafu_cli.cfa import mosaic, to_packed_rggb
from pafu_cli.evaluation.metrics import cpsnr, to_uint8, y_psnr
from pafu_cli.evaluation.protocols import GREY_IMAGES, _images
from pafu_cli.evaluation.resize import imresize, modcrop
from pafu_cli.filters.pafu import engine
from pafu_cli.filters.pafu.model import receptive_margin
from pafu_cli.models.registry import resolve_model

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


def _row(model_name, set_name, cases):
    """One table row from ``(old, new, idx_old, idx_new, psnr)`` per image."""
    sel = diff = changed = n = 0
    p_old, p_new = [], []
    for old, new, iold, inew, psnr in cases:
        sel += int(np.sum(iold != inew))
        diff = max(diff, float(np.abs(old - new).max()))
        o8, n8 = to_uint8(old), to_uint8(new)
        changed += int(np.sum(o8 != n8))
        n += o8.size
        p_old.append(psnr(old, o8))
        p_new.append(psnr(new, n8))
    print(
        f"| {model_name} | {set_name} | {sel} | {diff:.2e} | {changed} of {n} | {np.mean(p_old):.4f} | "
        f"{np.mean(p_new):.4f} |"
    )


def _demosaick_cases(m, folder):
    for _, im in _images(folder):
        cfa = mosaic(im.astype(np.float32) / 255, "RGGB")
        yield (*_demosaick_pair(m, cfa), lambda out, out8, im=im: cpsnr(out8, im, 10))


def _upscale_cases(m, folder, scale):
    for name, im in _images(folder):
        hr = modcrop(im, scale)
        lr = imresize(hr, 1.0 / scale).astype(np.float32) / 255
        gt = hr.astype(np.float64) / 255
        grey = name in GREY_IMAGES
        yield (*_upscale_pair(m, lr), lambda out, out8, gt=gt, grey=grey: y_psnr(out, gt, scale, grey=grey))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    a = ap.parse_args()
    root = Path(a.data)
    print(
        "| model | set | selections changed | max abs diff | 8-bit values changed | PSNR layer engine | PSNR banded |"
    )
    print("|---|---|---|---|---|---|---|")
    m = resolve_model(None, "demosaick")
    for s in ("Kodak24", "McMaster"):
        _row(m.name, s, _demosaick_cases(m, root / s))
    for scale in (2, 3, 4):
        m = resolve_model(None, "upscale", scale)
        for s in ("Set5", "Set14"):
            _row(m.name, s, _upscale_cases(m, root / s, scale))


if __name__ == "__main__":
    main()

"""What would mixing kernels at inference give? Test figures of a shipped model
with its argmax selection replaced by a softmax-weighted mixture of kernels.

The PAFU applies one kernel per pixel (the selector's argmax). Its selector was
polished on the expected loss ``sum_z p_z err_z`` with ``p = softmax(logits)``
(``pafu train --polish``), so its probabilities say how sure it is. Here each
pixel instead gets ``sum_z w_z W_z`` (still one linear filter per pixel) with
``w`` the softmax over all kernels, or over the ``k`` largest logits only (the
cost of ``k`` kernel applications). Same bank and selector, no retraining;
PyTorch forward passes, scored with the test protocols of ``pafu evaluate``
(which the argmax column reproduces for an argmax model, such as the
``upscale_xN_fast`` ones; the engine's own blend of two is ``mix`` 2 in the
model format, trained for with ``pafu train --mix 2``).

    python benchmarks/mixing.py upscale_x2_fast --scale 2 --set Set5 --set Set14
    python benchmarks/mixing.py demosaick_vivid --set McMaster
    python benchmarks/mixing.py demosaick_vivid_denoise_s5 --set McMaster --sigma 5

About a minute per set on one core.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pafu_cli.evaluation.metrics import cpsnr, to_uint8, y_psnr
from pafu_cli.evaluation.protocols import GREY_IMAGES, _images, noisy_mosaic
from pafu_cli.evaluation.resize import imresize, modcrop
from pafu_cli.models.registry import resolve_model
from pafu_cli.training.module import PafuNet, top_k_softmax

MODES = (("argmax", 1), ("softmax, all kernels", 0), ("top-2", 2), ("top-3", 3))


def mixed(net: PafuNet, batch, k: int):
    """(H, W, 3) output with the argmax kernel (k = 1, the network's inference),
    or kernels weighted by the softmax over the k largest logits (over all: k = 0)."""
    if k == 1:
        y = net(batch, mode="argmax")[0]
    else:
        x = net.prepare(batch)
        logits = net.logits(x)
        w = F.softmax(logits, 1) if k == 0 else top_k_softmax(logits, k)
        y = F.pixel_shuffle((net.responses(x) * w.unsqueeze(2)).sum(1), net.shuffle)
    return y[0].numpy().transpose(1, 2, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="model name or .npz path")
    ap.add_argument("--data", default="../shared/data", help="folder holding the test sets")
    ap.add_argument("--set", action="append", required=True, help="test set folder name (repeatable)")
    ap.add_argument("--scale", type=int, default=1, help="upscale models: the factor")
    ap.add_argument("--sigma", type=float, default=0.0, help="demosaick: mosaic noise, 0..255 units")
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = resolve_model(a.model, "upscale" if a.scale > 1 else "demosaick", a.scale)
    net = PafuNet.from_model(m)
    what = "Y-PSNR" if m.task == "upscale" else f"CPSNR b10, sigma {a.sigma:g}"
    print(f"| {m.name} ({what}) | " + " | ".join(name for name, _ in MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for name in a.set:
        scores = {mode: [] for mode, _ in MODES}
        for i, (stem, im) in enumerate(_images(Path(a.data) / name)):
            if m.task == "upscale":
                hr = modcrop(im, m.scale)
                x = imresize(hr, 1.0 / m.scale).astype(np.float32).transpose(2, 0, 1)[None] / 255
            else:
                x = noisy_mosaic(im, a.sigma, i)[None, None]
            x = torch.from_numpy(np.ascontiguousarray(x))
            with torch.no_grad():
                for mode, k in MODES:
                    out = mixed(net, x, k)
                    if m.task == "upscale":
                        s = y_psnr(out, hr.astype(np.float64) / 255, m.scale, grey=stem in GREY_IMAGES)
                    else:
                        s = cpsnr(to_uint8(out), im, 10)
                    scores[mode].append(s)
        print(f"| {name} | " + " | ".join(f"{np.mean(v):.3f}" for v in scores.values()) + " |", flush=True)


if __name__ == "__main__":
    main()

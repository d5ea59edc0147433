"""How far can a model's architecture go on a test set? A diagnostic upper bound.

The shipped model's bank (and, with ``--polish-rounds``, its selector) is fitted
to the test images themselves: least squares over patches cut from the test set
(the same cutting, noise and refit as ``pafu train``), given the selector's
choices. The result is scored with the test protocol of ``pafu evaluate``.
Nothing is saved: a bank fitted on the test set is a measurement of what the
architecture (bank size, support, selector) can express, never a model. If it
passes a target, the gap is in what the training data teaches; if it misses, that
architecture is unlikely to reach it by training (the fit is local, so this is an
estimate, not a proof).

    python benchmarks/oracle_bound.py demosaick_vivid --set McMaster
    python benchmarks/oracle_bound.py demosaick_denoise_s5 --set McMaster --sigma 5
    python benchmarks/oracle_bound.py upscale_x2_fast --set Set5 --set Set14 --scale 2
    python benchmarks/oracle_bound.py demosaick_denoise_s5 --set McMaster --sigma 5 --kernels 64 --kernel-size 9

``--kernels`` (a multiple of the model's) and ``--kernel-size`` (larger than the
model's) measure a larger architecture the same way: the bank is grown (each
kernel split along its pixels' principal direction, as ``pafu train --init-from``
grows one) and the kernels zero-padded before the fit.

About 3-6 minutes per set and round on one core.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pafu_cli.evaluation.protocols import demosaick_scores, sr_scores
from pafu_cli.models.registry import resolve_model
from pafu_cli.training import data as tdata
from pafu_cli.training.loop import Sampler, TrainConfig, grow_bank, polish_selector, refit_bank
from pafu_cli.training.module import PafuNet


def score(model, folder, sigma: float) -> float:
    if model.task == "upscale":
        return float(np.mean(list(sr_scores(folder, model.scale, model).values())))
    return float(np.mean([b10 for b10, _ in demosaick_scores(folder, model, sigma=sigma).values()]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="model name or .npz path")
    ap.add_argument("--data", default="../shared/data", help="folder holding the test sets")
    ap.add_argument("--set", action="append", required=True, help="test set folder name (repeatable)")
    ap.add_argument("--scale", type=int, default=1, help="upscale models: the factor")
    ap.add_argument("--sigma", type=float, default=0.0, help="demosaick: mosaic noise, 0..255 units")
    ap.add_argument("--batches", type=int, default=1000, help="batches of 16 patches for the refit")
    ap.add_argument("--polish-rounds", type=int, default=0, help="then rounds of (polish selector, refit)")
    ap.add_argument("--kernels", type=int, default=0, help="grow the bank to this many kernels first")
    ap.add_argument("--kernel-size", type=int, default=0, help="zero-pad the kernels to this support first")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = resolve_model(a.model, "upscale" if a.scale > 1 else "demosaick", a.scale)
    what = "Y-PSNR" if model.task == "upscale" else f"CPSNR b10, sigma {a.sigma:g}"
    if a.kernels or a.kernel_size:
        what += f"; fitted with {a.kernels or model.n_kernels} kernels of {a.kernel_size or 'its'} support"
    print(
        f"| {model.name} ({what}) | shipped | bank fitted on the set |"
        + "".join(f" + selector round {r + 1} |" for r in range(a.polish_rounds))
    )
    print("|---|---|---|" + "---|" * a.polish_rounds)
    s = a.sigma / 255
    cfg = TrainConfig(
        task=model.task,
        scale=model.scale,
        n_kernels=model.n_kernels,
        shrink=(1.0,),
        noise_sigma=s,
        noise_sigma_min=s,
    )
    for name in a.set:
        folder = Path(a.data) / name
        sampler = Sampler(cfg, tdata.list_images([folder]))
        rng = np.random.default_rng(a.seed)
        net = PafuNet.from_model(model, a.kernels, a.kernel_size)
        if net.n_kernels > model.n_kernels:
            grow_bank(net, sampler, rng, model.n_kernels)
        row = [score(model, folder, a.sigma)]
        refit_bank(net, sampler, rng, a.batches)
        row.append(score(net.to_model(name=model.name), folder, a.sigma))
        for _ in range(a.polish_rounds):
            polish_selector(net, sampler, rng, 1000, cfg.lr_selector / 2)
            refit_bank(net, sampler, rng, a.batches)
            row.append(score(net.to_model(name=model.name), folder, a.sigma))
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()

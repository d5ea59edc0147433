"""The training loop: alternating selector/bank updates, checkpoints, export.

One step in four updates the selector, the other three the bank (the paper's
1:3 alternation). The Gumbel temperature anneals geometrically from ``tau0``
to ``tau1``. After the gradient phase the bank can be refitted by least
squares given the selector's argmax choices (``refit``), which is the
l2-optimal bank for those choices.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pafu_cli.evaluation.metrics import cpsnr, to_uint8, y_psnr
from pafu_cli.filters.pafu.model import load_model, save_model
from pafu_cli.training import data as tdata
from pafu_cli.training.module import PafuNet

log = logging.getLogger("pafu.train")


@dataclasses.dataclass
class TrainConfig:
    task: str = "upscale"
    scale: int = 2
    data: tuple = ()
    out: str = "model.npz"
    name: str = ""
    iters: int = 3000
    batch: int = 16
    patch: int = 0  # network-input patch size (LR for upscale, packed quads x2 for demosaick); 0 = default
    n_kernels: int = 16
    kernel_sizes: tuple = ()
    width: int = 16
    depth: int = 3
    lr_bank: float = 1e-3
    lr_selector: float = 2e-3
    tau0: float = 1.0
    tau1: float = 0.1
    decorrelation: float = 1e-5
    alternate: bool = True
    refit: bool = True
    refit_batches: int = 200
    noise_a: float = 0.0
    noise_sigma: float = 0.0
    noise_p_clean: float = 0.0
    noise_sigma_min: float = 0.0
    val_sigma: float = 0.0  # demosaick: mosaic noise (0..1 units) of the validation that picks the bank
    val_saturation: float = 1.0  # demosaick: validation images' saturation factor (vivid models: 2)
    val_regions: bool = False  # demosaick: validation images recoloured per region (data.recolour_regions)
    color_aug: float = 0.0
    color_sat: float = 2.0  # demosaick: largest saturation factor of the colour augmentation
    color_invert: float = 0.0  # demosaick: share of patches with one colour channel inverted
    color_regions: float = 0.0  # demosaick: share of patches recoloured per random region
    passthrough: bool = False  # demosaick: copy the known samples (see PafuNet)
    selector_input: str = "packed"  # demosaick: "full" = full-resolution selector (ablation)
    shrink: tuple = (1.0, 0.8, 0.6)
    bayer_shrink: tuple = (1.0,)  # demosaick: the pictures also shrunk by these factors
    seed: int = 0
    threads: int = 0
    checkpoint: str = ""
    checkpoint_every: int = 250
    log_every: int = 100
    val_every: int = 10
    kmeans_samples: int = 40000
    init: str = "kmeans"  # or "random": every kernel the LS fit on a random pixel split
    init_from: str = ""  # warm start: an exported model (.npz) of the same architecture
    selector_pretrain: int = 500
    balance: float = 0.0  # weight of the load-balancing term n * sum_z f_z p_z (0: off)
    revive_every: int = 0  # steps between dead-kernel splits (0: off); only in the first half
    revive_min_share: float = 0.002  # a kernel chosen for less than this share of pixels is dead
    polish_steps: int = 0  # after the refit: selector steps on the expected l2 loss per round (0: off)
    polish_rounds: int = 2  # rounds of (polish the selector, refit the bank)
    polish_revive: bool = False  # each polish round first splits busy kernels into dead ones
    mix: int = 1  # kernels blended per pixel at inference (2: the top two, see PafuNet)

    def default_patch(self):
        if self.patch:
            return self.patch
        return 96 if self.task == "demosaick" else {2: 32, 3: 24, 4: 20}[self.scale]


class Sampler:
    """Draws training batches (NumPy) for the configured task."""

    def __init__(self, cfg: TrainConfig, files):
        self.cfg = cfg
        if cfg.task == "upscale":
            self.src = tdata.SRPairs.build(files, cfg.scale, cfg.shrink)
        else:
            self.src = tdata.BayerImages.build(files, cfg.bayer_shrink)
        self.noise = tdata.NoiseRange(cfg.noise_a, cfg.noise_sigma, cfg.noise_p_clean, cfg.noise_sigma_min)

    def __call__(self, rng):
        c = self.cfg
        if c.task == "upscale":
            x, y = self.src.sample(rng, c.batch, c.default_patch(), c.scale)
        else:
            x, y = self.src.sample(
                rng,
                c.batch,
                c.default_patch(),
                self.noise,
                c.color_aug,
                c.color_sat,
                c.color_invert,
                c.color_regions,
            )
        return torch.from_numpy(x), torch.from_numpy(y)


def _margin(net: PafuNet) -> int:
    """Output pixels near a patch border that depend on padding (excluded from losses)."""
    sel = sum((c.kernel_size[0] - 1) // 2 for c in net.selector)
    return max(sel, (net.big_k - 1) // 2) * net.shuffle


def _crop(t, m):
    return t[..., m:-m, m:-m] if m else t


def refit_bank(
    net: PafuNet, sampler: Sampler, rng, batches: int, ridge: float = 1e-4, assign: str = "selector"
):
    """Least-squares bank given per-pixel choices (in place).

    ``assign``: "selector" (the selector's argmax, as at inference) or "random".
    Returns the number of samples each kernel was fitted on. A network that
    blends two kernels per pixel (``net.mix`` 2, with ``assign`` "selector") is
    refitted jointly (:func:`refit_bank_mixed`).
    """
    if net.mix > 1 and assign == "selector":
        return refit_bank_mixed(net, sampler, rng, batches, ridge)
    n, co, ci, k = net.n_kernels, net.out_channels, net.in_channels, net.big_k
    f = ci * k * k
    ata = torch.zeros(n, f, f, dtype=torch.float64)
    atb = torch.zeros(n, f, co, dtype=torch.float64)
    counts = torch.zeros(n, dtype=torch.int64)
    r = (k - 1) // 2
    m = _margin(net) // net.shuffle
    with torch.no_grad():
        for _ in range(batches):
            xb, yb = sampler(rng)
            x = net.prepare(xb)
            if assign == "random":
                idx = torch.randint(0, n, x.shape[:1] + x.shape[2:])
            else:
                idx = net.logits(x).argmax(1)
            feats = F.unfold(F.pad(x, (r, r, r, r), mode="reflect"), k)
            b, _, h, w = x.shape
            feats = feats.view(b, f, h, w)
            tgt = F.pixel_unshuffle(yb, net.shuffle)
            feats, tgt, idx = _crop(feats, m), _crop(tgt, m), _crop(idx, m)
            feats = feats.permute(0, 2, 3, 1).reshape(-1, f).double()
            tgt = tgt.permute(0, 2, 3, 1).reshape(-1, co).double()
            idx = idx.reshape(-1)
            for z in range(n):
                sel = idx == z
                cnt = int(sel.sum())
                if cnt == 0:
                    continue
                a = feats[sel]
                ata[z] += a.t() @ a
                atb[z] += a.t() @ tgt[sel]
                counts[z] += cnt
        mask = net.mask[:, 0, 0].reshape(n, -1).bool()  # (n, k*k)
        for z in range(n):
            if counts[z] < f:
                continue
            keep = mask[z].repeat(ci)  # feature order is (c, ky, kx)
            a = ata[z][keep][:, keep]
            lam = ridge * torch.trace(a) / a.shape[0]
            sol = torch.linalg.solve(a + lam * torch.eye(a.shape[0], dtype=a.dtype), atb[z][keep])
            full = torch.zeros(f, co, dtype=torch.float64)
            full[keep] = sol
            net.bank.data[z] = full.t().reshape(co, ci, k, k).float()
    return counts.tolist()


def _patch_rows(net: PafuNet, x, m):
    """(B*H*W, C_in*K*K) float64 input patches of every pixel (reflect-padded as the bank
    sees them), margin ``m`` cropped; feature order (c, ky, kx)."""
    k = net.big_k
    r = (k - 1) // 2
    b, _, h, w = x.shape
    feats = F.unfold(F.pad(x, (r, r, r, r), mode="reflect"), k).view(b, -1, h, w)
    feats = _crop(feats, m)
    return feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).double()


def refit_bank_mixed(net: PafuNet, sampler: Sampler, rng, batches: int, ridge: float = 1e-4):
    """Least-squares bank for the top-two blend (in place): with every pixel's two
    kernels ``a, b`` and weights ``w_a, w_b`` fixed by the selector, its output
    ``w_a W_a x + w_b W_b x`` is linear in the bank, so all kernels are fitted
    jointly (normal equations over the n K^2 C_in unknowns of each output, with
    cross terms between the two kernels of a pixel). Taps outside a kernel's
    own support stay zero. Returns each kernel's number of pixels as the argmax."""
    n, co, ci, k = net.n_kernels, net.out_channels, net.in_channels, net.big_k
    f = ci * k * k
    gram = torch.zeros(n, f, n, f, dtype=torch.float64)
    rhs = torch.zeros(n, f, co, dtype=torch.float64)
    counts = torch.zeros(n, dtype=torch.int64)
    m = _margin(net) // net.shuffle
    with torch.no_grad():
        for _ in range(batches):
            xb, yb = sampler(rng)
            x = net.prepare(xb)
            top, where = _crop(net.logits(x), m).topk(2, 1)
            wts = F.softmax(top, 1).permute(0, 2, 3, 1).reshape(-1, 2).double()
            where = where.permute(0, 2, 3, 1).reshape(-1, 2)
            feats = _patch_rows(net, x, m)
            tgt = _crop(F.pixel_unshuffle(yb, net.shuffle), m).permute(0, 2, 3, 1).reshape(-1, co).double()
            pair = where[:, 0] * n + where[:, 1]
            counts += torch.bincount(where[:, 0], minlength=n)
            for p in torch.unique(pair).tolist():
                sel = pair == p
                a, b = divmod(p, n)
                xa = feats[sel] * wts[sel, :1]
                xb_ = feats[sel] * wts[sel, 1:]
                gram[a, :, a] += xa.t() @ xa
                gram[b, :, b] += xb_.t() @ xb_
                cross = xa.t() @ xb_
                gram[a, :, b] += cross
                gram[b, :, a] += cross.t()
                rhs[a] += xa.t() @ tgt[sel]
                rhs[b] += xb_.t() @ tgt[sel]
        keep = net.mask[:, 0, 0].reshape(n, -1).bool().repeat(1, ci).reshape(-1)  # (n*f,)
        g = gram.reshape(n * f, n * f)[keep][:, keep]
        lam = ridge * torch.trace(g) / g.shape[0]
        sol = torch.linalg.solve(g + lam * torch.eye(g.shape[0], dtype=g.dtype), rhs.reshape(n * f, co)[keep])
        full = torch.zeros(n * f, co, dtype=torch.float64)
        full[keep] = sol
        net.bank.data.copy_(full.reshape(n, f, co).permute(0, 2, 1).reshape(net.bank.shape).float())
    return counts.tolist()


def polish_mixed(net: PafuNet, sampler: Sampler, rng, steps: int, lr_sel: float, lr_bank: float) -> float:
    """Train selector and bank together on the squared error of the top-two blend
    (``net.mix`` 2), the loss of its inference (in place). Returns the mean loss
    of the last tenth of the steps."""
    opt = torch.optim.Adam(
        [{"params": net.selector_parameters(), "lr": lr_sel}, {"params": [net.bank], "lr": lr_bank}]
    )
    m = _margin(net)

    def loss_of(xb, yb):
        out, _ = net(xb, mode="infer")
        return ((_crop(out, m) - _crop(yb, m)) ** 2).sum(1).mean()

    return _cosine_descent(opt, [lr_sel, lr_bank], steps, sampler, rng, loss_of)


def _cosine_descent(opt, base_lrs, steps: int, sampler: Sampler, rng, loss_of) -> float:
    """``steps`` optimiser steps on ``loss_of(batch, target)`` of fresh batches, each
    parameter group's rate decaying from its ``base_lrs`` entry (:func:`_cosine`).
    Returns the mean loss of the last tenth of the steps."""
    tail = []
    for step in range(steps):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * _cosine(step, steps)
        loss = loss_of(*sampler(rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= steps - max(1, steps // 10):
            tail.append(loss.item())
    return float(np.mean(tail)) if tail else 0.0


def evaluate(net: PafuNet, files, cfg: TrainConfig, sigma: float | None = None) -> float:
    """Mean PSNR on whole validation images with the model's inference (argmax
    selection, or the top-two blend).

    Upscale: Y-PSNR, ``scale`` px shaved. Demosaick: CPSNR with the 10-px border,
    Gaussian noise ``sigma`` (0..1 units) on the mosaic, seeded per image, on the
    images with their saturation scaled by ``cfg.val_saturation`` and, with
    ``cfg.val_regions``, recoloured per region (:func:`data.recolour_regions`).
    """
    from pafu_cli.cfa import mosaic
    from pafu_cli.evaluation.resize import imresize, modcrop

    if sigma is None:
        sigma = cfg.val_sigma
    scores = []
    with torch.no_grad():
        for i, f in enumerate(files):
            im = tdata.read_rgb8(f)
            if cfg.task == "upscale":
                hr = modcrop(im, cfg.scale)
                lr = imresize(hr, 1.0 / cfg.scale)
                x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255)
                out = net(x, mode="infer")[0][0].numpy().transpose(1, 2, 0)
                scores.append(y_psnr(out, hr.astype(np.float64) / 255, cfg.scale))
            else:
                im8 = tdata.validation_picture(im, i, cfg.val_saturation, cfg.val_regions)
                cfa = mosaic(im8.astype(np.float32) / 255, "RGGB")
                if sigma:
                    rng = np.random.default_rng(10_000 + i)
                    cfa = np.clip(cfa + rng.normal(0, sigma, cfa.shape), 0, 1).astype(np.float32)
                out = net(torch.from_numpy(cfa[None, None]), mode="infer")[0][0].numpy()
                scores.append(cpsnr(to_uint8(out.transpose(1, 2, 0)), im8))
    return float(np.mean(scores))


def _patch_features(net: PafuNet, x):
    """(B*H*W, f) mean-removed input patches of the kernel size (structure, not level)."""
    k = net.big_k
    r = (k - 1) // 2
    p = F.unfold(F.pad(x, (r, r, r, r), mode="reflect"), k)  # (B, C*k*k, L)
    b, _, L = p.shape
    p = p.view(b, net.in_channels, k * k, L)
    p = p - p.mean(2, keepdim=True)
    return p.reshape(b, -1, L).permute(0, 2, 1).reshape(b * L, -1)


def _kmeans(feats, n, rng, iters=20):
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    centers = feats[torch.randperm(len(feats), generator=g)[:n]].clone()
    for _ in range(iters):
        lab = torch.cdist(feats, centers).argmin(1)
        for z in range(n):
            members = feats[lab == z]
            if len(members):
                centers[z] = members.mean(0)
            else:  # re-seed an empty cluster at the worst-fitted sample
                centers[z] = feats[torch.cdist(feats, centers).min(1).values.argmax()]
    return centers


def _init_bank(net: PafuNet, sampler, rng, cfg):
    """Input-defined initial partition (a learned, RAISR-like hash).

    k-means on mean-removed input patches gives ``n`` clusters that depend on
    the input only (edge orientation and strength), the selector learns to
    predict them (cross-entropy), and the bank is the least-squares fit per
    cluster given the selector's argmax. Identical starting kernels instead let
    straight-through Gumbel training collapse onto one or two kernels, and a
    partition by best kernel (k-planes) splits on target noise, which the
    selector cannot predict (see README, ablation).
    """
    n = net.n_kernels
    if cfg.init == "random":
        refit_bank(net, sampler, rng, max(20, cfg.refit_batches // 4), assign="random")
        return
    with torch.no_grad():
        feats = []
        while sum(len(f) for f in feats) < cfg.kmeans_samples:
            xb, _ = sampler(rng)
            f = _patch_features(net, net.prepare(xb))
            feats.append(f[torch.randperm(len(f))[: len(f) // 8]])
        feats = torch.cat(feats)[: cfg.kmeans_samples]
        centers = _kmeans(feats, n, rng)
    opt = torch.optim.Adam(net.selector_parameters(), lr=cfg.lr_selector)
    m = _margin(net) // net.shuffle
    for _ in range(cfg.selector_pretrain):
        xb, _ = sampler(rng)
        x = net.prepare(xb)
        with torch.no_grad():
            lab = torch.cdist(_patch_features(net, x), centers).argmin(1)
            lab = lab.view(x.shape[0], x.shape[2], x.shape[3])
        loss = F.cross_entropy(_crop(net.logits(x), m), _crop(lab, m))
        opt.zero_grad()
        loss.backward()
        opt.step()
    refit_bank(net, sampler, rng, max(20, cfg.refit_batches // 4), assign="selector")


def balance_loss(sel):
    """``n * sum_z f_z * f_z'`` over the selection weights ``sel`` (B, n, H, W):
    ``f_z`` the share of pixels choosing kernel z (the straight-through values
    are the hard choices) and ``f_z'`` the same with its gradient (through the
    soft choices), as in mixture-of-experts routing. 1 when every kernel is
    chosen equally often, n when one takes all; its gradient moves pixels away
    from the busiest kernels."""
    share = sel.mean((0, 2, 3))
    return sel.shape[1] * (share.detach() * share).sum()


def _reset_adam_rows(opt, param, rows):
    st = opt.state.get(param)
    if st:
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                st[key][rows] = 0


def revive_dead_kernels(
    net: PafuNet,
    sampler: Sampler,
    rng,
    counts,
    min_share: float,
    opt_sel=None,
    opt_bank=None,
    refit_batches: int = 20,
) -> list:
    """Split busy kernels into dead ones (in place); returns the (dead, source) pairs.

    Straight-through Gumbel training leaves many kernels unchosen (they get no
    gradient and stay dead). Each dead kernel takes over half of the pixels of
    a busy one, as in splitting a vector-quantiser codebook: the two share the
    source's last-layer selector row, moved apart along the first principal
    direction of the source's hidden features (so the split follows the
    largest variation among its pixels), and both kernels are refitted by
    least squares on their new pixels.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return []
    dead = [int(z) for z in np.flatnonzero(counts < min_share * total)]
    busy = [int(z) for z in np.argsort(-counts) if counts[z] >= 4 * min_share * total]
    pairs = list(zip(dead, busy))
    if not pairs:
        return []
    last = net.selector[-1]
    with torch.no_grad():
        xb, _ = sampler(rng)
        x = net.prepare(xb)
        h = (x - net.in_mean.view(1, -1, 1, 1)) * net.in_scale.view(1, -1, 1, 1)
        for _i, conv in enumerate(net.selector[:-1]):
            r = (conv.kernel_size[0] - 1) // 2
            h = F.relu(conv(F.pad(h, (r, r, r, r), mode="reflect") if r else h))
        feats = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        choice = last(h).argmax(1).reshape(-1)
        for d, s in pairs:
            hs = feats[choice == s]
            if len(hs) < 2 * feats.shape[1]:
                continue
            mean = hs.mean(0)
            _, _, vt = torch.linalg.svd(hs - mean, full_matrices=False)
            v = vt[0]
            std = ((hs - mean) @ v).std().clamp(min=1e-6)
            delta = v / std  # logit difference of about +-2 per standard deviation
            w0, b0 = last.weight[s, :, 0, 0].clone(), last.bias[s].clone()
            last.weight[s, :, 0, 0] = w0 - delta
            last.weight[d, :, 0, 0] = w0 + delta
            last.bias[s] = b0 + delta @ mean
            last.bias[d] = b0 - delta @ mean
        bank = net.bank.data.clone()
        refit_bank(net, sampler, rng, refit_batches)
        keep = torch.ones(net.n_kernels, dtype=torch.bool)
        for d, s in pairs:
            keep[d] = keep[s] = False
        net.bank.data[keep] = bank[keep]
    rows = [z for pair in pairs for z in pair]
    if opt_bank is not None:
        _reset_adam_rows(opt_bank, net.bank, rows)
    if opt_sel is not None:
        _reset_adam_rows(opt_sel, last.weight, rows)
        _reset_adam_rows(opt_sel, last.bias, rows)
    return pairs


def _cosine(step: int, total: int) -> float:
    """Learning-rate factor: cosine decay from 1 to 5% over ``total`` steps."""
    return 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total))


def _snapshot(net: PafuNet) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items()}


def polish_selector(net: PafuNet, sampler: Sampler, rng, steps: int, lr: float) -> float:
    """Train the selector alone for a fixed bank, on the expected l2 loss (in place).

    For every pixel the squared error of every kernel is known (all responses
    are computed anyway), so the selector can minimise ``sum_z p_z(x) err_z``
    with ``p = softmax(logits)`` directly: an exact gradient, no Gumbel noise,
    and the loss the PSNR measures. Its minimum is the argmax choice of the
    kernel with the least expected error given what the selector sees, which
    is what inference does. Returns the mean loss of the last tenth of the steps.
    """
    opt = torch.optim.Adam(net.selector_parameters(), lr=lr)
    m = _margin(net) // net.shuffle

    def loss_of(xb, yb):
        x = net.prepare(xb)
        with torch.no_grad():
            err = ((net.responses(x) - F.pixel_unshuffle(yb, net.shuffle).unsqueeze(1)) ** 2).sum(2)
        return _crop(F.softmax(net.logits(x), 1) * err, m).sum(1).mean()

    return _cosine_descent(opt, [lr], steps, sampler, rng, loss_of)


def grow_bank(net: PafuNet, sampler: Sampler, rng, n0: int) -> list:
    """Split each of the first ``n0`` kernels into its copies (in place).

    After :meth:`PafuNet.load_model` of an ``n0``-kernel model into a larger
    bank, kernels ``n0..n-1`` are copies that are never chosen (argmax takes the
    first of equal logits): each is treated as a dead kernel and split off its
    original along the first principal direction of the original's hidden
    features, as :func:`revive_dead_kernels` does, and both are refitted by
    least squares. Returns the (copy, original) pairs.
    """
    pairs = []
    for start in range(n0, net.n_kernels, n0):
        counts = np.zeros(net.n_kernels)
        counts[:start] = 1.0  # the kernels in use so far; the next n0 copies are dead
        pairs += revive_dead_kernels(net, sampler, rng, counts, min_share=0.2 / start)
    return pairs


def train(cfg: TrainConfig, command: str = "") -> dict:
    """Train a PAFU model and export it to ``cfg.out``; returns a summary dict."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    files = tdata.list_images(cfg.data)
    train_files, val_files = tdata.split_files(files, cfg.val_every)
    if not val_files:
        raise ValueError(
            f"{', '.join(map(str, cfg.data))}: training needs at least 2 images "
            "(one is held out for validation)"
        )
    t_start = t0 = time.time()
    sampler = Sampler(cfg, train_files)
    log.info("data: %d train / %d val images (%.1fs)", len(train_files), len(val_files), time.time() - t0)
    sizes = list(cfg.kernel_sizes) or [5] * cfg.n_kernels
    net = PafuNet(
        cfg.task,
        cfg.scale,
        cfg.n_kernels,
        sizes,
        cfg.width,
        cfg.depth,
        passthrough=cfg.passthrough,
        selector_input=cfg.selector_input,
        mix=cfg.mix,
    )
    opt_sel = torch.optim.Adam(net.selector_parameters(), lr=cfg.lr_selector)
    opt_bank = torch.optim.Adam([net.bank], lr=cfg.lr_bank)
    start = load_model(cfg.init_from) if cfg.init_from else None  # warm start (also for the provenance)
    step = 0
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else Path(cfg.out).with_suffix(".ckpt.pt")
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"])
        opt_sel.load_state_dict(state["opt_sel"])
        opt_bank.load_state_dict(state["opt_bank"])
        step = state["step"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", ckpt, step)
    elif start is not None:
        n0 = net.load_model(start)
        log.info("init from %s: val %.3f dB", cfg.init_from, evaluate(net, val_files, cfg))
        if n0 < net.n_kernels:
            grow_bank(net, sampler, rng, n0)
            log.info(
                "grown from %d to %d kernels: val %.3f dB", n0, net.n_kernels, evaluate(net, val_files, cfg)
            )
    else:
        _init_bank(net, sampler, rng, cfg)
        log.info("init (k-means partition + LS bank, argmax): val %.3f dB", evaluate(net, val_files, cfg))
    m = _margin(net)
    base_lr = ((opt_sel, cfg.lr_selector), (opt_bank, cfg.lr_bank))
    t0 = time.time()
    run_loss = 0.0
    use = torch.zeros(net.n_kernels, dtype=torch.float64)
    while step < cfg.iters:
        tau = cfg.tau0 * (cfg.tau1 / cfg.tau0) ** (step / max(1, cfg.iters - 1))
        cos = _cosine(step, cfg.iters)
        for opt, lr in base_lr:
            for g in opt.param_groups:
                g["lr"] = lr * cos
        xb, yb = sampler(rng)
        out, sel = net(xb, tau=tau, mode="gumbel")
        task_loss = F.l1_loss(_crop(out, m), _crop(yb, m))
        loss = task_loss + cfg.decorrelation * net.decorrelation() if cfg.decorrelation else task_loss
        if cfg.balance:
            loss = loss + cfg.balance * balance_loss(_crop(sel, m // net.shuffle))
        update_selector = (step % 4 == 0) if cfg.alternate else True
        update_bank = (step % 4 != 0) if cfg.alternate else True
        opt_sel.zero_grad()
        opt_bank.zero_grad()
        loss.backward()
        if update_selector:
            opt_sel.step()
        if update_bank:
            opt_bank.step()
        step += 1
        run_loss += task_loss.item()
        if cfg.revive_every:
            use += _crop(sel.detach(), m // net.shuffle).sum((0, 2, 3)).double()
            if step % cfg.revive_every == 0:
                if step <= cfg.iters // 2:
                    pairs = revive_dead_kernels(
                        net, sampler, rng, use.numpy(), cfg.revive_min_share, opt_sel, opt_bank
                    )
                    if pairs:
                        log.info("step %d: split %s", step, " ".join(f"{s}->{d}" for d, s in pairs))
                use.zero_()
        if step % cfg.log_every == 0:
            log.info(
                "step %d/%d tau %.3f l1 %.5f (%.2fs/step)",
                step,
                cfg.iters,
                tau,
                run_loss / cfg.log_every,
                (time.time() - t0) / cfg.log_every,
            )
            run_loss, t0 = 0.0, time.time()
        if step % cfg.checkpoint_every == 0 or step == cfg.iters:
            state = {
                "net": net.state_dict(),
                "opt_sel": opt_sel.state_dict(),
                "opt_bank": opt_bank.state_dict(),
                "step": step,
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "config": dataclasses.asdict(cfg),
            }
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, ckpt)
    summary = {"val_sgd": evaluate(net, val_files, cfg)}
    log.info("after gradient training: val %.3f dB", summary["val_sgd"])
    if cfg.refit:
        sgd_bank = net.bank.data.clone()
        counts = refit_bank(net, sampler, np.random.default_rng(cfg.seed + 1), cfg.refit_batches)
        summary["val_refit"] = evaluate(net, val_files, cfg)
        summary["kernel_use"] = counts
        log.info("after least-squares refit: val %.3f dB; kernel use %s", summary["val_refit"], counts)
        if summary["val_refit"] < summary["val_sgd"]:  # l2 refit can lose to the l1-trained bank
            net.bank.data.copy_(sgd_bank)
            log.info("kept the gradient-trained bank (better on validation)")
    if cfg.polish_steps:
        best = max(summary["val_sgd"], summary.get("val_refit", -1.0))
        keep = _snapshot(net)
        prng = np.random.default_rng(cfg.seed + 2)
        counts = summary.get("kernel_use")
        for r in range(cfg.polish_rounds):
            if cfg.polish_revive and counts is not None:
                pairs = revive_dead_kernels(net, sampler, prng, counts, cfg.revive_min_share)
                if pairs:
                    log.info("polish round %d: split %s", r + 1, " ".join(f"{s}->{d}" for d, s in pairs))
            if net.mix > 1:
                loss = polish_mixed(
                    net, sampler, prng, cfg.polish_steps, cfg.lr_selector / 2, cfg.lr_bank / 10
                )
            else:
                loss = polish_selector(net, sampler, prng, cfg.polish_steps, cfg.lr_selector / 2)
            counts = refit_bank(net, sampler, prng, cfg.refit_batches)
            v = evaluate(net, val_files, cfg)
            log.info(
                "polish round %d: %s %.3g, val %.3f dB; kernel use %s",
                r + 1,
                "blend l2" if net.mix > 1 else "expected l2",
                loss,
                v,
                counts,
            )
            if v > best:
                best, keep = v, _snapshot(net)
                summary["val_polish"], summary["kernel_use"] = v, counts
        net.load_state_dict(keep)
    if cfg.task == "demosaick" and (cfg.noise_sigma or cfg.noise_a):
        summary["val_clean"] = evaluate(net, val_files, cfg, sigma=0.0)
        for sg in (5, 10):
            summary[f"val_sigma{sg}"] = evaluate(net, val_files, cfg, sigma=sg / 255)
    if cfg.task == "demosaick" and (cfg.val_regions or cfg.val_saturation != 1):  # the ordinary images too
        summary["val_plain"] = evaluate(
            net, val_files, dataclasses.replace(cfg, val_regions=False, val_saturation=1.0)
        )
    summary["val"] = max(summary["val_sgd"], summary.get("val_refit", -1.0), summary.get("val_polish", -1.0))
    data_desc = "; ".join(f"{d} ({len(tdata.list_images([d]))} images)" for d in cfg.data)
    data_desc += f"; every {cfg.val_every}th image held out for validation"
    training = {
        "wall_minutes": round((time.time() - t_start) / 60, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if start is not None:  # the chain that reproduces this model
        training["init_from"] = {
            "file": str(cfg.init_from),
            "command": start.provenance.get("command", ""),
            "validation": start.quality.get("validation", {}),
        }
        earlier = start.quality.get("training", {}).get("init_from")
        if earlier:  # a longer chain: the start's own start, and so on
            training["init_from"]["init_from"] = earlier
    prov = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "seed": cfg.seed,
        "data": data_desc,
        "date": datetime.date.today().isoformat(),
        "quality": json.dumps(
            {
                "validation": {k: round(v, 3) for k, v in summary.items() if k.startswith("val")},
                "training": training,
            }
        ),
    }
    name = cfg.name or Path(cfg.out).stem
    if net.full_res:  # ablation only: the measured figures are the result
        log.info("full-resolution selector: not exportable; validation %s", json.dumps(summary))
        summary["out"] = ""
        return summary
    model = net.to_model(
        name=name,
        description=f"PAFU {cfg.task} x{cfg.scale}: {net.n_kernels} kernels "
        f"{sorted(set(sizes))}, selector depth {cfg.depth} width {cfg.width}",
        provenance=prov,
        noise_sigma=cfg.val_sigma,
    )
    save_model(model, cfg.out)
    summary["out"] = str(cfg.out)
    return summary

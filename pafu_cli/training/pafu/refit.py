"""PAFU training after (and between) the gradient steps: least-squares refits of
the bank for fixed choices, selector polishing for a fixed bank, and splitting
dead kernels into busy ones.

The refits solve the normal equations of the l2 loss over sampled training
patches (:func:`pafu_cli.training.common.ridge_solve`), the l2-optimal bank
for the selector's choices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from pafu_cli.training.common import cosine_descent, crop, reset_adam_rows, ridge_solve
from pafu_cli.training.pafu.module import PafuNet

if TYPE_CHECKING:
    from pafu_cli.training.pafu.loop import Sampler


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
    m = net.margin() // net.shuffle
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
            feats, tgt, idx = crop(feats, m), crop(tgt, m), crop(idx, m)
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
            sol = ridge_solve(a, atb[z][keep], ridge)
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
    feats = crop(feats, m)
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
    m = net.margin() // net.shuffle
    with torch.no_grad():
        for _ in range(batches):
            xb, yb = sampler(rng)
            x = net.prepare(xb)
            top, where = crop(net.logits(x), m).topk(2, 1)
            wts = F.softmax(top, 1).permute(0, 2, 3, 1).reshape(-1, 2).double()
            where = where.permute(0, 2, 3, 1).reshape(-1, 2)
            feats = _patch_rows(net, x, m)
            tgt = crop(F.pixel_unshuffle(yb, net.shuffle), m).permute(0, 2, 3, 1).reshape(-1, co).double()
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
        sol = ridge_solve(g, rhs.reshape(n * f, co)[keep], ridge)
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
    m = net.margin()

    def loss_of(xb, yb):
        out, _ = net(xb, mode="infer")
        return ((crop(out, m) - crop(yb, m)) ** 2).sum(1).mean()

    return cosine_descent(opt, [lr_sel, lr_bank], steps, sampler, rng, loss_of)


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
        reset_adam_rows(opt_bank, net.bank, rows)
    if opt_sel is not None:
        reset_adam_rows(opt_sel, last.weight, rows)
        reset_adam_rows(opt_sel, last.bias, rows)
    return pairs


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
    m = net.margin() // net.shuffle

    def loss_of(xb, yb):
        x = net.prepare(xb)
        with torch.no_grad():
            err = ((net.responses(x) - F.pixel_unshuffle(yb, net.shuffle).unsqueeze(1)) ** 2).sum(2)
        return crop(F.softmax(net.logits(x), 1) * err, m).sum(1).mean()

    return cosine_descent(opt, [lr], steps, sampler, rng, loss_of)


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

"""A learned joint bilateral upsampler (PAC family, task ``guided_upsample``): the
network, its training data and its training loop, in PyTorch.

The model is JBU with learned parts, built so that the Numba engine runs it with the
resampling kernel of :mod:`pafu_cli.filters.pac._kernels` plus two small convolution
stages:

- guide branch, at high resolution: ``f = [guide * r, conv1x1(relu(conv3x3(guide)))]``
  (3 + ``feat`` channels; ``r`` learned per channel, starting at 1 / 0.2, the JBU range);
- low-resolution branch: from the map, its validity and the guide's mean over each
  sample's footprint (``gmean``), three 3x3 convolutions of ``width`` channels give
  the samples' features ``g = [gmean * r, 0] + head``, a corrected value ``d + head``
  and a confidence ``exp(head)`` (it never needs the high-resolution features, so
  the engine makes those once, band by band, for the output stage only);
- output: ``y_o = sum_q a_y a_x c_q m_q K(f_o, g_q) d_q / sum(the same weights)``,
  K = exp(-|f_o - g_q|^2 / 2), over the samples closer than 2 low-res pixels, with
  learned separable spatial weights per output phase (a_y, a_x >= 0).

Every head starts at zero and the spatial weights at JBU's (sigma 0.5, balanced): the
untrained model is exactly ``pafu_cli.pac.jbu`` with its defaults, and training can
only move it from there.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RADIUS = 2.0  # low-res pixels
TAPS = 5  # window of candidate samples per axis: offsets -2..2


def phase_offsets(s: int) -> np.ndarray:
    """(s, 5) distances (low-res pixels) from each output phase's centre to the
    samples at offsets -2..2 of its block: ``delta - (p + 0.5) / s + 0.5``."""
    p = np.arange(s)[:, None]
    delta = np.arange(TAPS)[None, :] - TAPS // 2
    return delta - (p + 0.5) / s + 0.5


def jbu_spatial(s: int, sigma: float = 0.5) -> np.ndarray:
    """JBU's balanced spatial weights per phase (see ``resample.axis_taps``): (s, 5)."""
    t = phase_offsets(s)
    a = np.exp(-0.5 * (t / sigma) ** 2) * (np.abs(t) < RADIUS - 1e-9)
    left = (a * np.maximum(-t, 0)).sum(axis=1, keepdims=True)
    right = (a * np.maximum(t, 0)).sum(axis=1, keepdims=True)
    shrink_l = np.where(left > right, right / np.maximum(left, 1e-300), 1.0)
    shrink_r = np.where(right > left, left / np.maximum(right, 1e-300), 1.0)
    return a * np.where(t < 0, shrink_l, np.where(t > 0, shrink_r, 1.0))


def learned_jbu(f, g, d, c, s: int, ay, ax, slopes=None):
    """The output stage. f (N, Cf, H, W) with H = s h; g (N, Cf, h, w); d, c (N, 1, h, w)
    (c: confidence times validity, 0 = missing); ay, ax (s, 5) spatial weights;
    ``slopes`` (N, 2, h, w), optional: each sample then stands for the plane
    d_q + slope_q . (u - q) (u: the output pixel's centre in low-res pixels).
    Returns (N, 1, H, W), NaN where no sample is in reach (a hole, as the engine
    leaves it). Samples outside the map do not count (zero padding of c)."""
    n, cf, h, w = g.shape
    gw = F.unfold(g, TAPS, padding=TAPS // 2).view(n, cf, TAPS * TAPS, h, w)
    dw = F.unfold(d, TAPS, padding=TAPS // 2).view(n, TAPS * TAPS, h, w)
    cw = F.unfold(c, TAPS, padding=TAPS // 2).view(n, TAPS * TAPS, h, w)
    fp = f.view(n, cf, h, s, w, s).permute(0, 1, 3, 5, 2, 4)  # (N, Cf, s, s, h, w)
    # |f - g|^2 = |f|^2 + |g|^2 - 2 f.g: one batched product instead of a pass per channel.
    dot = torch.einsum("ncabhw,nckhw->nabkhw", fp, gw)
    f2 = (fp * fp).sum(dim=1)[:, :, :, None]
    g2 = (gw * gw).sum(dim=1)[:, None, None]
    d2 = (f2 + g2 - 2 * dot).clamp_min(0)
    spatial = (ay[:, None, :, None] * ax[None, :, None, :]).reshape(s, s, TAPS * TAPS)
    weight = spatial[None, :, :, :, None, None] * cw[:, None, None]  # (N, s, s, 25, h, w)
    live = weight > 0
    shift = torch.where(live, d2, torch.full_like(d2, math.inf)).amin(dim=3, keepdim=True)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift)).detach()
    # >= 0 on the live taps by the shift; a dead tap (weight 0) nearer in features than
    # every live one must not make exp overflow (inf * 0 = NaN, and NaN gradients)
    k = torch.exp(-0.5 * (d2 - shift).clamp_min(0)) * weight
    value = dw[:, None, None]
    if slopes is not None:
        off = -torch.tensor(phase_offsets(s), dtype=f.dtype)  # (s, 5): u - q per phase and tap
        oy = off[:, :, None].expand(s, TAPS, TAPS).reshape(s, TAPS * TAPS)
        ox = off[:, None, :].expand(s, TAPS, TAPS).reshape(s, TAPS * TAPS)
        sy = F.unfold(slopes[:, :1], TAPS, padding=TAPS // 2).view(n, TAPS * TAPS, h, w)
        sx = F.unfold(slopes[:, 1:], TAPS, padding=TAPS // 2).view(n, TAPS * TAPS, h, w)
        value = (
            value
            + sy[:, None, None] * oy[None, :, None, :, None, None]
            + sx[:, None, None] * ox[None, None, :, :, None, None]
        )
    num = (k * value).sum(dim=3)
    den = k.sum(dim=3)
    some = den > 0
    # a safe denominator first, so that no gradient flows through 0 / 0
    y = torch.where(some, num / torch.where(some, den, torch.ones_like(den)), torch.full_like(den, math.nan))
    return y.permute(0, 3, 1, 4, 2).reshape(n, 1, h * s, w * s)


class GuidedJbuNet(nn.Module):
    """The learned JBU (module docstring). ``scales``: the factors it holds spatial
    weights for."""

    def __init__(
        self,
        scales=(4, 8, 16),
        feat: int = 4,
        hidden: int = 8,
        width: int = 24,
        sigma_range=0.2,
        slopes=False,
    ):
        super().__init__()
        self.scales = tuple(scales)
        self.slopes = bool(slopes)
        self.feat, self.hidden, self.width = feat, hidden, width
        self.range_scale = nn.Parameter(torch.full((3,), 1.0 / sigma_range))
        self.g1 = nn.Conv2d(3, hidden, 3, padding=1)
        self.g2 = nn.Conv2d(hidden, feat, 1)
        nn.init.zeros_(self.g2.weight)
        nn.init.zeros_(self.g2.bias)
        cin = 2 + 3  # map, validity, guide mean
        self.l1 = nn.Conv2d(cin, width, 3, padding=1)
        self.l2 = nn.Conv2d(width, width, 3, padding=1)
        self.l3 = nn.Conv2d(width, width, 3, padding=1)
        # g residual (3 + feat), d residual, log confidence[, slopes y and x]
        self.head = nn.Conv2d(width, 3 + feat + 2 + 2 * self.slopes, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.spatial = nn.ParameterDict()
        for s in self.scales:
            a = jbu_spatial(s)
            # softplus^-1 of the JBU weights (tiny ones: log); unused taps stay at -30.
            inv = np.where(a > 1e-12, np.log(np.expm1(np.maximum(a, 1e-12))), -30.0)
            self.spatial[str(s)] = nn.Parameter(torch.tensor(inv, dtype=torch.float32))

    def spatial_weights(self, s: int):
        t = torch.tensor(np.abs(phase_offsets(s)) < RADIUS - 1e-9, dtype=torch.float32)
        return F.softplus(self.spatial[str(s)]) * t

    def guide_features(self, guide):
        """guide (N, 3, H, W) in [0, 1] -> f (N, 3 + feat, H, W)."""
        learned = self.g2(F.relu(self.g1(guide)))
        return torch.cat([guide * self.range_scale[None, :, None, None], learned], dim=1)

    def forward(self, lr, valid, guide, s: int):
        """lr, valid (N, 1, h, w) (lr normalised, 0 where invalid); guide (N, 3, s h, s w)."""
        f = self.guide_features(guide)
        gmean = F.avg_pool2d(guide, s)
        x = torch.cat([lr, valid, gmean], dim=1)
        hdn = F.relu(self.l1(x))
        hdn = F.relu(self.l2(hdn))
        hdn = F.relu(self.l3(hdn))
        out = self.head(hdn)
        base = torch.cat(
            [gmean * self.range_scale[None, :, None, None], torch.zeros_like(out[:, 3 : 3 + self.feat])], 1
        )
        g = base + out[:, : 3 + self.feat]
        d = lr + out[:, 3 + self.feat : 4 + self.feat]
        c = torch.exp(out[:, 4 + self.feat : 5 + self.feat].clamp(-10, 10)) * valid
        ay = ax = self.spatial_weights(s)
        slopes = out[:, 5 + self.feat : 7 + self.feat] if self.slopes else None
        return learned_jbu(f, g, d, c, s, ay, ax, slopes)


# ---------------------------------------------------------------------------
# Data


ALL_DEGRADATIONS = ("bicubic", "decimated", "noisy")
DEGRADATIONS = ("bicubic", "noisy")  # those of the shipped model


class DepthPatches:
    """Training batches from a pool of synthetic RGB-D pairs made on the training
    split of the photographs (never the validation tenth, never a test set).

    Each item: a random crop, a random scale of ``scales``, and one of the
    ``degradations``, equally likely: ``bicubic`` (the P1 protocol's Pillow bicubic
    shrink of the clean map), ``decimated`` (every s-th sample of the clean map: a
    noise-free low-resolution sensor) or ``noisy`` (every s-th sample of the noisy
    map, with its holes). The map is normalised by the low-res valid samples' min
    and max.
    """

    def __init__(
        self, folders, rng, scales=(4, 8, 16), patch=128, pool=240, degradations=DEGRADATIONS, log=print
    ):
        from pafu_cli.training.data import list_images, read_rgb8, split_files
        from pafu_cli.training.depth_data import synth_rgbd

        train, _ = split_files(list_images(folders))
        self.rng, self.scales, self.patch = rng, tuple(scales), patch
        unknown = sorted(set(degradations) - set(ALL_DEGRADATIONS))
        if unknown or not degradations:
            raise ValueError(
                f"degradations must be among {', '.join(ALL_DEGRADATIONS)}, got {unknown or 'none'}"
            )
        self.degradations = tuple(degradations)
        t0 = time.perf_counter()
        self.pool = []
        order = rng.permutation(len(train))
        for i in range(pool):
            im = read_rgb8(train[order[i % len(train)]])
            if min(im.shape[:2]) < patch:
                continue
            if i >= len(train):  # later rounds: flipped copies, new depth
                im = np.ascontiguousarray(im[:, ::-1] if (i // len(train)) % 2 else im[::-1])
            self.pool.append(synth_rgbd(im, rng, noise=True))
        log(f"{len(self.pool)} synthetic RGB-D pairs made in {time.perf_counter() - t0:.0f} s")

    def item(self, s: int):
        from pafu_cli.evaluation.depth import pillow_bicubic

        guide, noisy, clean, valid = self.pool[self.rng.integers(len(self.pool))]
        p = self.patch
        y0 = self.rng.integers(0, guide.shape[0] - p + 1)
        x0 = self.rng.integers(0, guide.shape[1] - p + 1)
        g = guide[y0 : y0 + p, x0 : x0 + p]
        hr = clean[y0 : y0 + p, x0 : x0 + p]
        kind = self.degradations[self.rng.integers(len(self.degradations))]
        c = (s - 1) // 2
        if kind == "noisy":
            lr = noisy[y0 + c : y0 + p : s, x0 + c : x0 + p : s]
            m = valid[y0 + c : y0 + p : s, x0 + c : x0 + p : s].astype(np.float32)
        elif kind == "decimated":
            lr = np.ascontiguousarray(hr[c::s, c::s])
            m = np.ones_like(lr)
        else:
            lr = pillow_bicubic(np.ascontiguousarray(hr), p // s, p // s)
            m = np.ones_like(lr)
        k = self.rng.integers(8)  # a flip / rotation
        g, hr, lr, m = (np.rot90(a, k % 4) if k < 4 else np.rot90(a[::-1], k % 4) for a in (g, hr, lr, m))
        return g, hr, lr, m

    def batch(self, n: int):
        """(lr, valid, guide, target, s) tensors for one scale."""
        s = int(self.rng.choice(self.scales))
        items = [self.item(s) for _ in range(n)]
        return to_tensors(items, s)


def normalise(lr, m):
    """(lo, span) of the valid low-res samples (a flat map: span 1)."""
    v = lr[m > 0]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    return lo, (hi - lo) if hi > lo else 1.0


def to_tensors(items, s):
    lrs, ms, gs, hrs = [], [], [], []
    for g, hr, lr, m in items:
        lo, span = normalise(lr, m)
        lrs.append(np.where(m > 0, (lr - lo) / span, 0.0))
        ms.append(m)
        gs.append(np.ascontiguousarray(g).transpose(2, 0, 1) / 255.0)
        hrs.append((hr - lo) / span)

    def t(a):
        return torch.tensor(np.stack(a), dtype=torch.float32)

    return t(lrs)[:, None], t(ms)[:, None], t(gs), t(hrs)[:, None], s


# ---------------------------------------------------------------------------
# Training


def validate(net, pairs, scales) -> dict:
    """Mean RMSE (levels) on the synthetic validation pairs, per scale and
    degradation (``clean``: P1-like; ``noisy``: the low-res sensor)."""
    from pafu_cli.training.depth_data import degrade_bicubic

    out = {}
    net.eval()
    with torch.no_grad():
        for s in scales:
            for kind in ("clean", "noisy"):
                errs = []
                for guide, noisy, clean, valid in pairs:
                    h, w = clean.shape[0] // s * s, clean.shape[1] // s * s
                    if kind == "clean":
                        lr, hr = degrade_bicubic(clean, s)
                        m = np.ones_like(lr)
                    else:
                        c = (s - 1) // 2
                        lr, hr = noisy[c:h:s, c:w:s], clean[:h, :w]
                        m = valid[c:h:s, c:w:s].astype(np.float32)
                    lo, span = normalise(lr, m)
                    x = torch.tensor(np.where(m > 0, (lr - lo) / span, 0.0), dtype=torch.float32)[None, None]
                    mm = torch.tensor(m)[None, None]
                    g = torch.tensor(guide[:h, :w].transpose(2, 0, 1) / 255.0, dtype=torch.float32)[None]
                    y = net(x, mm, g, s)[0, 0].numpy() * span + lo
                    # pixels with no valid sample in reach are holes for every method: not scored
                    errs.append(float(np.sqrt(np.nanmean((np.clip(y, 0, 255) - hr) ** 2))))
                out[f"x{s} {kind}"] = float(np.mean(errs))
    net.train()
    return out


def train(
    folders,
    out: Path,
    *,
    slopes=False,
    pool=240,
    degradations=DEGRADATIONS,
    widths=(8, 4, 24),
    init=None,
    scales=(4, 8, 16),
    iters=20000,
    batch=16,
    patch=128,
    lr=2e-3,
    seed=0,
    val_every=1000,
    minutes=None,
    log=print,
):
    """Train a GuidedJbuNet; keep the checkpoint with the best validation score
    (sum over scales and degradations of RMSE relative to the untrained model,
    which is JBU). ``widths``: (hidden, feat, width) of :class:`GuidedJbuNet`;
    ``init``: an exported model to start from instead (its widths, slopes and
    scales win). Returns (net, history)."""
    from pafu_cli.training.depth_data import validation_set

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = DepthPatches(folders, rng, scales, patch, pool, degradations, log=log)
    val = validation_set(folders, n=12, seed=1, noise=True)
    hidden, feat, width = widths
    if init is None:
        net = GuidedJbuNet(scales, feat=feat, hidden=hidden, width=width, slopes=slopes)
        base = validate(net, val, scales)  # the untrained model is JBU
    else:
        net = from_model(init)
        scales = net.scales
        base = validate(GuidedJbuNet(scales), val, scales)
        start = validate(net, val, scales)
        log(
            f"start: score {sum(start[k] / base[k] for k in start):.4f}, "
            + ", ".join(f"{k} {v:.3f}" for k, v in start.items())
        )
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    log("untrained (= JBU): " + ", ".join(f"{k} {v:.3f}" for k, v in base.items()))
    best, best_state, history = math.inf, None, []
    t0 = time.perf_counter()
    for step in range(1, iters + 1):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / iters))
        x, m, g, hr, s = data.batch(batch)
        y = net(x, m, g, s)
        err = (y - hr).abs()
        scored = torch.isfinite(err)  # holes with no valid sample in reach stay holes
        if not scored.any():
            continue
        loss = err[scored].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        done = minutes is not None and time.perf_counter() - t0 > 60 * minutes
        if step % val_every == 0 or step == iters or done:
            v = validate(net, val, scales)
            score = sum(v[k] / base[k] for k in v)
            history.append({"step": step, "seconds": round(time.perf_counter() - t0), **v, "score": score})
            log(
                f"step {step} ({time.perf_counter() - t0:.0f} s) loss {loss.item():.4f} score {score:.4f} "
                + ", ".join(f"{k} {val_:.3f}" for k, val_ in v.items())
            )
            if score < best:
                best = score
                best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
                torch.save({"state": best_state, "step": step, "history": history}, out.with_suffix(".pt"))
        if done:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net, history


def from_model(model) -> GuidedJbuNet:
    """A :class:`GuidedJbuNet` holding the weights of an exported model (a
    :class:`~pafu_cli.filters.pac.model.PacModel` of task ``guided_upsample``): the
    inverse of :func:`export`, for warm starts."""
    if model.task != "guided_upsample":
        raise ValueError(f"{model.path or model.name}: a {model.task} model, not a guided_upsample one")
    net = GuidedJbuNet(
        model.scales,
        feat=model.feat,
        hidden=model.guide_w1.shape[0],
        width=model.lr_weights[0].shape[0],
        slopes=model.slopes,
    )

    def t(a):
        return torch.from_numpy(np.array(a, np.float32))

    with torch.no_grad():
        net.range_scale.copy_(t(model.range_scale))
        for conv, w, b in (
            (net.g1, model.guide_w1, model.guide_b1),
            (net.g2, model.guide_w2, model.guide_b2),
            (net.l1, model.lr_weights[0], model.lr_biases[0]),
            (net.l2, model.lr_weights[1], model.lr_biases[1]),
            (net.l3, model.lr_weights[2], model.lr_biases[2]),
            (net.head, model.head_w, model.head_b),
        ):
            conv.weight.copy_(t(w))
            conv.bias.copy_(t(b))
        for s in net.scales:
            a = np.asarray(model.spatial[s], np.float64)
            # softplus^-1 where the weight is in use (as the constructor's start)
            inv = np.where(a > 1e-12, np.log(np.expm1(np.maximum(a, 1e-12))), -30.0)
            net.spatial[str(s)].copy_(t(inv))
    return net


def export(net: GuidedJbuNet, name: str, provenance: dict, description: str = ""):
    """The trained network as a :class:`~pafu_cli.filters.pac.model.PacModel`."""
    from pafu_cli.filters.pac.model import PacModel

    def a(t):
        return np.ascontiguousarray(t.detach().cpu().numpy(), np.float32)

    return PacModel(
        task="guided_upsample",
        scales=tuple(net.scales),
        range_scale=a(net.range_scale),
        guide_w1=a(net.g1.weight),
        guide_b1=a(net.g1.bias),
        guide_w2=a(net.g2.weight),
        guide_b2=a(net.g2.bias),
        lr_weights=(a(net.l1.weight), a(net.l2.weight), a(net.l3.weight)),
        lr_biases=(a(net.l1.bias), a(net.l2.bias), a(net.l3.bias)),
        head_w=a(net.head.weight),
        head_b=a(net.head.bias),
        spatial={s: a(net.spatial_weights(s)) for s in net.scales},
        name=name,
        description=description,
        provenance=provenance,
    )

"""The PAFU training loop: configuration, batches, validation, and the phases
from the start to the exported model.

One step in four updates the selector, the other three the bank (the paper's
1:3 alternation). The Gumbel temperature anneals geometrically from ``tau0``
to ``tau1``. After the gradient phase the bank can be refitted by least
squares given the selector's argmax choices (``refit``, see
:mod:`pafu_cli.training.pafu.refit`), which is the l2-optimal bank for those
choices.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pafu_cli.evaluation.metrics import cpsnr, to_uint8, y_psnr
from pafu_cli.models.format import load_model, save_model
from pafu_cli.training import data as tdata
from pafu_cli.training.common import (
    cosine,
    crop,
    geometric,
    kmeans,
    load_checkpoint,
    provenance,
    save_checkpoint,
    snapshot,
    warm_start_record,
)
from pafu_cli.training.pafu.module import PafuNet
from pafu_cli.training.pafu.refit import (
    grow_bank,
    polish_mixed,
    polish_selector,
    refit_bank,
    revive_dead_kernels,
)

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
    features: int = 0  # a pafunet model: size of the feature bank on the selector's last hidden layer
    lr_features: float = 0.0  # pafunet: Adam's rate for the feature bank (0: lr_bank)
    minutes: float = 0.0  # stop the gradient steps after this long (0: after iters)
    val_interval: int = 0  # log the validation figure every this many steps (0: only at the end)

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
        centers = kmeans(feats, n, rng)
    opt = torch.optim.Adam(net.selector_parameters(), lr=cfg.lr_selector)
    m = net.margin() // net.shuffle
    for _ in range(cfg.selector_pretrain):
        xb, _ = sampler(rng)
        x = net.prepare(xb)
        with torch.no_grad():
            lab = torch.cdist(_patch_features(net, x), centers).argmin(1)
            lab = lab.view(x.shape[0], x.shape[2], x.shape[3])
        loss = F.cross_entropy(crop(net.logits(x), m), crop(lab, m))
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


def train(cfg: TrainConfig, command: str = "") -> dict:
    """Train a PAFU model and export it to ``cfg.out``; returns a summary dict.

    Phases: a start (resumed checkpoint, warm start from ``cfg.init_from``, or
    the k-means partition), the gradient steps, the least-squares refit, the
    polish rounds, the validation figures, the export.
    """
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
    start = load_model(cfg.init_from) if cfg.init_from else None  # warm start (also for the provenance)
    if start is not None and (cfg.features or getattr(start, "feature_bank", None) is not None):
        # grow a linear model, or go on training a pafunet one
        mix = cfg.mix if cfg.mix > 1 else 0  # 0: the model's
        net = PafuNet.from_model(start, features=cfg.features, width=cfg.width, mix=mix)
    else:
        net = PafuNet(
            cfg.task,
            cfg.scale,
            cfg.n_kernels,
            _kernel_sizes(cfg),
            cfg.width,
            cfg.depth,
            passthrough=cfg.passthrough,
            selector_input=cfg.selector_input,
            mix=cfg.mix,
            features=cfg.features,
        )
    groups = [{"params": [net.bank], "lr": cfg.lr_bank}]
    if net.feature_k:
        groups.append({"params": [net.fbank], "lr": cfg.lr_features or cfg.lr_bank})
    optimisers = {
        "opt_sel": torch.optim.Adam(net.selector_parameters(), lr=cfg.lr_selector),
        "opt_bank": torch.optim.Adam(groups),
    }
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else Path(cfg.out).with_suffix(".ckpt.pt")
    step = 0
    if ckpt.exists():
        step = load_checkpoint(ckpt, net, optimisers, rng)
        log.info("resumed from %s at step %d", ckpt, step)
    elif net.feature_k and start is not None:
        log.info("init from %s: val %.3f dB", cfg.init_from, evaluate(net, val_files, cfg))
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
    _gradient_steps(net, optimisers, step, ckpt, sampler, rng, cfg, val_files)
    summary = {"val_sgd": evaluate(net, val_files, cfg)}
    log.info("after gradient training: val %.3f dB", summary["val_sgd"])
    if cfg.refit and not net.feature_k:  # the least-squares refit knows the input taps only
        _refit(net, sampler, val_files, cfg, summary)
    if cfg.polish_steps and not net.feature_k:
        _polish(net, sampler, val_files, cfg, summary)
    if cfg.task == "demosaick" and (cfg.noise_sigma or cfg.noise_a):
        summary["val_clean"] = evaluate(net, val_files, cfg, sigma=0.0)
        for sg in (5, 10):
            summary[f"val_sigma{sg}"] = evaluate(net, val_files, cfg, sigma=sg / 255)
    if cfg.task == "demosaick" and (cfg.val_regions or cfg.val_saturation != 1):  # the ordinary images too
        summary["val_plain"] = evaluate(
            net, val_files, dataclasses.replace(cfg, val_regions=False, val_saturation=1.0)
        )
    summary["val"] = max(summary["val_sgd"], summary.get("val_refit", -1.0), summary.get("val_polish", -1.0))
    training = {
        "wall_minutes": round((time.time() - t_start) / 60, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if start is not None:  # the chain that reproduces this model
        training["init_from"] = warm_start_record(start, cfg.init_from)
    if net.feature_k:
        training["features"] = {"size": net.feature_k, "width": int(net.fbank.shape[2])}
    if net.full_res:  # ablation only: the measured figures are the result
        log.info("full-resolution selector: not exportable; validation %s", json.dumps(summary))
        summary["out"] = ""
        return summary
    data_desc = "; ".join(f"{d} ({len(tdata.list_images([d]))} images)" for d in cfg.data)
    data_desc += f"; every {cfg.val_every}th image held out for validation"
    model = net.to_model(
        name=cfg.name or Path(cfg.out).stem,
        description=describe(net),
        provenance=provenance(command, cfg.seed, data_desc, summary, training),
        noise_sigma=cfg.val_sigma,
    )
    save_model(model, cfg.out)
    summary["out"] = str(cfg.out)
    return summary


def describe(net: PafuNet) -> str:
    """A model's one-line description from its network (what ``pafu models`` shows)."""
    sizes = sorted(set(net.kernel_sizes.tolist()))
    text = (
        f"PAFU {net.task} x{net.model_scale}: {net.n_kernels} kernels {sizes}, selector depth "
        f"{len(net.selector)} width {net.selector[0].out_channels}"
    )
    if net.feature_k:
        text += f", {net.feature_k}x{net.feature_k} taps of its last hidden layer (pafunet)"
    return text


def _kernel_sizes(cfg: TrainConfig) -> list:
    return list(cfg.kernel_sizes) or [5] * cfg.n_kernels


def _gradient_steps(
    net: PafuNet, optimisers: dict, step: int, ckpt: Path, sampler, rng, cfg, val_files=()
) -> None:
    """From ``step`` to ``cfg.iters``: straight-through Gumbel steps on the l1 loss
    (plus the decorrelation and balance terms), selector and bank in turn,
    dead kernels revived in the first half, checkpoints written (in place)."""
    opt_sel, opt_bank = optimisers["opt_sel"], optimisers["opt_bank"]
    m = net.margin()
    base_lr = [(g, cfg.lr_selector) for g in opt_sel.param_groups]
    bank_rates = (cfg.lr_bank, cfg.lr_features or cfg.lr_bank)  # the bank, the feature bank
    base_lr += list(zip(opt_bank.param_groups, bank_rates))
    t0 = t_begin = time.time()
    run_loss = 0.0
    use = torch.zeros(net.n_kernels, dtype=torch.float64)
    while step < cfg.iters:
        if cfg.minutes and time.time() - t_begin > 60 * cfg.minutes:
            log.info("stopped after %.1f minutes at step %d", cfg.minutes, step)
            save_checkpoint(ckpt, net, optimisers, step, rng, dataclasses.asdict(cfg))
            break
        tau = geometric(cfg.tau0, cfg.tau1, step, cfg.iters)
        cos = cosine(step, cfg.iters)
        for g, lr in base_lr:
            g["lr"] = lr * cos
        xb, yb = sampler(rng)
        # A pafunet model with a top-two blend trains as it infers (the blend is
        # differentiable in the logits); the others by straight-through Gumbel.
        out, sel = net(xb, tau=tau, mode="infer" if net.feature_k and net.mix > 1 else "gumbel")
        task_loss = F.l1_loss(crop(out, m), crop(yb, m))
        loss = task_loss + cfg.decorrelation * net.decorrelation() if cfg.decorrelation else task_loss
        if cfg.balance:
            loss = loss + cfg.balance * balance_loss(crop(sel, m // net.shuffle))
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
            use += crop(sel.detach(), m // net.shuffle).sum((0, 2, 3)).double()
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
        if cfg.val_interval and step % cfg.val_interval == 0 and val_files:
            log.info("step %d: val %.3f dB", step, evaluate(net, val_files, cfg))
        if step % cfg.checkpoint_every == 0 or step == cfg.iters:
            save_checkpoint(ckpt, net, optimisers, step, rng, dataclasses.asdict(cfg))


def _refit(net: PafuNet, sampler, val_files, cfg: TrainConfig, summary: dict) -> None:
    """The least-squares bank for the selector's choices, kept if it validates
    better than the gradient-trained one (in place; figures into ``summary``)."""
    sgd_bank = net.bank.data.clone()
    counts = refit_bank(net, sampler, np.random.default_rng(cfg.seed + 1), cfg.refit_batches)
    summary["val_refit"] = evaluate(net, val_files, cfg)
    summary["kernel_use"] = counts
    log.info("after least-squares refit: val %.3f dB; kernel use %s", summary["val_refit"], counts)
    if summary["val_refit"] < summary["val_sgd"]:  # l2 refit can lose to the l1-trained bank
        net.bank.data.copy_(sgd_bank)
        log.info("kept the gradient-trained bank (better on validation)")


def _polish(net: PafuNet, sampler, val_files, cfg: TrainConfig, summary: dict) -> None:
    """``cfg.polish_rounds`` rounds of (split dead kernels, polish, refit); the
    best network on validation is kept (in place; figures into ``summary``)."""
    best = max(summary["val_sgd"], summary.get("val_refit", -1.0))
    keep = snapshot(net)
    prng = np.random.default_rng(cfg.seed + 2)
    counts = summary.get("kernel_use")
    for r in range(cfg.polish_rounds):
        if cfg.polish_revive and counts is not None:
            pairs = revive_dead_kernels(net, sampler, prng, counts, cfg.revive_min_share)
            if pairs:
                log.info("polish round %d: split %s", r + 1, " ".join(f"{s}->{d}" for d, s in pairs))
        if net.mix > 1:
            loss = polish_mixed(net, sampler, prng, cfg.polish_steps, cfg.lr_selector / 2, cfg.lr_bank / 10)
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
            best, keep = v, snapshot(net)
            summary["val_polish"], summary["kernel_use"] = v, counts
    net.load_state_dict(keep)

"""The Spatially Adaptive Dataset (SAD), the PAFU paper's toy proof.

Data: 89x89 test images (training uses 45x45 crops of the same process) of
uniform 8-bit noise in (0, 1] (levels 1..255 / 255) with black pixels (exactly
0) on a sparse grid (spacing 7, random offset, each grid point kept with
probability 0.6). The target dilates every black pixel to a 5x5 black square
and leaves the other pixels unchanged. Two 5x5 kernels solve it exactly: a
Dirac (keep the pixel) and a zero kernel (a black pixel lies within the 5x5
window), chosen per pixel by a selector that detects "is there an exactly
black pixel nearby".

What the experiment shows (``tests/test_sad.py``): a PAFU with two 5x5
kernels and a 422-parameter selector (472 parameters in all), trained with the
paper's method, learns the Dirac and the zero kernel (entries within 2e-4) and
reaches a test MSE of 1e-8 .. 3e-6 (argmax inference, seeds 0, 1, 2, 4); a
plain spatially shared CNN of about the same size (445 parameters) trained for
the same number of steps on the same data stays at the identity error (MSE
0.08 .. 0.10, lr 1e-2 or 3e-3, with or without lr decay), although a
three-layer ReLU CNN could in principle express the map
(``relu(u - 255 * count_of_black_nearby)`` in 8-bit units u): a shared filter
has to build that hard gate out of thresholds that gradient descent does not
find in this budget, whereas the PAFU only has to *select*.

Training (``train_sad``), the paper's method in essence: straight-through
Gumbel-softmax selection with a temperature schedule (tau 1 -> 0.1), l1 task
loss, selector / kernel updates alternating 1:3, Adam with a cosine
learning-rate decay to 5% (as the main loop), argmax at evaluation. What made
it reliable (measured, 600 steps, seed 0 unless said):

* Selector ``1x1 (1->4) ReLU, 5x5 (4->4) ReLU, 1x1 (4->2)`` on input in 8-bit
  units (``in_scale=255``, ``in_mean=0``: black is 0, noise >= 1), with the
  first layer initialised as *decreasing* ramps ``relu(b - |w| u)``, b in
  [0, 1): bounded "dark level" features. With PyTorch's default init half the
  channels are increasing ramps of 8-bit values (up to ~255) that swamp the
  one-unit black/level-1 difference: even supervised cross-entropy on the true
  partition stayed at the majority class (accuracy 0.75) after 300 steps, and
  Gumbel training collapsed onto one kernel (even with the bank frozen at the
  ideal Dirac/zero). With the decreasing ramps the supervised fit reaches 100%
  accuracy in ~100 steps.
* A "linear start" for the bank, as bilinear for demosaicking: kernel A is a
  Dirac, kernel B zero (plus 0.01 noise). Both stay free parameters.
* A selector warm-up (``warmup`` steps, k-planes style): every pixel is
  labelled with the kernel of the initial bank that fits its target best (ties,
  e.g. black pixels themselves, ignored) and the selector is fitted to those
  labels with cross-entropy; then the Gumbel training above. Without it
  (same selector init and bank start) Gumbel training got only to MSE 0.07
  with the bank free and 0.035 with the bank frozen at the ideal: the
  straight-through l1 gradient is zero wherever the Dirac is chosen on an
  identity pixel, the majority (73% of pixels want the identity) pulls the
  choice, and the bank's own updates drift the zero kernel towards it. The
  warm-up alone does not solve the task (after it the argmax picks the zero
  kernel on ~3% of pixels instead of 27%, test MSE 0.08); the Gumbel phase
  does the rest.
* The cosine decay: with a constant lr 1e-2 the zero kernel kept a ~-0.002
  offset from Adam's noise floor (test MSE 1.4e-4 .. 5.6e-4, seeds 0-5).

The decorrelation penalty is off by default: the optimal bank holds a zero
kernel, which has no direction to normalise, and the penalty pushes it away
from zero (measured: with weight 1e-3 the selector never picks it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pafu_cli.training.pafu.module import PafuNet

SIZE = 89
SPACING = 7


def sad_batch(rng, batch: int, size: int = SIZE):
    """(B, 1, size, size) inputs and targets, float32."""
    x = (rng.integers(1, 256, (batch, 1, size, size)) / 255.0).astype(np.float32)  # (0, 1]
    black = np.zeros_like(x, dtype=bool)
    for b in range(batch):
        oy, ox = rng.integers(0, SPACING, 2)
        ys = np.arange(2 + oy, size - 2, SPACING)
        xs = np.arange(2 + ox, size - 2, SPACING)
        keep = rng.random((len(ys), len(xs))) < 0.6
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        black[b, 0, yy[keep], xx[keep]] = True
    x[black] = 0.0
    near = F.max_pool2d(torch.from_numpy(black.astype(np.float32)), 5, 1, 2).numpy() > 0
    y = np.where(near, 0.0, x).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


class PlainCNN(nn.Module):
    """Spatially shared baseline: 3x3 conv layers with ReLU, reflected borders.

    Its input is scaled like the PAFU selector's (8-bit units), so both see the
    same data; it could represent the task in principle (depth 3 covers 7x7).
    ``width=6, depth=3``: 445 parameters (the PAFU: 472).
    """

    def __init__(self, width=6, depth=3):
        super().__init__()
        chans = [1] + [width] * (depth - 1) + [1]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, x):
        x = x * 255.0
        for i, c in enumerate(self.convs):
            x = c(F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x / 255.0


def make_pafu(width=4, in_scale=255.0):
    """Two 5x5 kernels (Dirac and zero start) and a small selector, see the module doc."""
    net = PafuNet("generic", 1, n_kernels=2, kernel_sizes=[5, 5], width=width, depth=3, channels=(1, 1))
    net.selector = nn.ModuleList([nn.Conv2d(1, width, 1), nn.Conv2d(width, width, 5), nn.Conv2d(width, 2, 1)])
    with torch.no_grad():
        net.in_mean.fill_(0.0)
        net.in_scale.fill_(in_scale)  # 8-bit units: "black" is 0, noise is >= 1
        first = net.selector[0]
        first.weight.copy_(-first.weight.abs())  # decreasing ramps relu(b - |w| u)
        first.bias.uniform_(0.0, 1.0)
        net.selector[-1].weight.mul_(0.1)  # small initial logits
        net.selector[-1].bias.zero_()
        net.bank.normal_(0, 0.01)
        net.bank[0, 0, 0, 2, 2] += 1.0  # kernel A: Dirac; kernel B: ~0
    return net


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def warmup_selector(net, rng, steps, batch, size, opt):
    """Fit the selector to the best-kernel partition of the current bank (cross-entropy)."""
    for _ in range(steps):
        x, y = sad_batch(rng, batch, size)
        with torch.no_grad():
            err = (net.responses(x)[:, :, 0] - y).abs()  # (B, n, H, W)
            lab = err.argmin(1)
            lab[(err[:, 0] - err[:, 1]).abs() < 1e-3] = -100  # ties carry no information
        loss = F.cross_entropy(net.logits(x), lab, ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()


def train_sad(
    model: str,
    steps: int = 600,
    seed: int = 0,
    batch: int = 8,
    lr: float = 1e-2,
    size: int = 45,
    warmup: int = 100,
    tau0: float = 1.0,
    tau1: float = 0.1,
    decorrelation: float = 0.0,
    cnn_width: int = 6,
):
    """Train a PAFU (``model="pafu"``) or the plain CNN; returns (net, test MSE).

    The PAFU gets ``warmup`` selector warm-up steps then ``steps`` Gumbel
    steps; the CNN gets ``warmup + steps`` Adam steps on the same data stream
    (same seed, batch, crop size, learning rate).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if model == "pafu":
        net = make_pafu()
        opt_sel = torch.optim.Adam(net.selector_parameters(), lr=lr)
        warmup_selector(net, rng, warmup, batch, size, opt_sel)
        opt_sel = torch.optim.Adam(net.selector_parameters(), lr=lr)
        opt_bank = torch.optim.Adam([net.bank], lr=lr)
    else:
        net = PlainCNN(width=cnn_width)
        opt_sel = opt_bank = torch.optim.Adam(net.parameters(), lr=lr)
        steps = warmup + steps
    # Cosine decay to 5% as in the main training loop (the CNN gets the same).
    opts = {id(opt_sel): opt_sel, id(opt_bank): opt_bank}.values()
    for step in range(steps):
        for o in opts:
            o.param_groups[0]["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / steps)))
        x, y = sad_batch(rng, batch, size)
        if model == "pafu":
            tau = tau0 * (tau1 / tau0) ** (step / max(1, steps - 1))
            out, _ = net(x, tau=tau, mode="gumbel")
            loss = F.l1_loss(out, y)
            if decorrelation:
                loss = loss + decorrelation * net.decorrelation()
            opt = opt_sel if step % 4 == 0 else opt_bank  # the paper's 1:3 alternation
        else:
            out = net(x)
            loss = F.l1_loss(out, y)
            opt = opt_sel
        opt_sel.zero_grad()
        opt_bank.zero_grad()
        loss.backward()
        opt.step()
    return net, test_mse(net, model, seed + 1000)


def test_mse(net, model: str, seed: int, batch: int = 16) -> float:
    """MSE on ``batch`` fresh 89x89 images (argmax selection for the PAFU)."""
    x, y = sad_batch(np.random.default_rng(seed), batch)
    with torch.no_grad():
        out = net(x, mode="argmax")[0] if model == "pafu" else net(x)
    return float(F.mse_loss(out, y))

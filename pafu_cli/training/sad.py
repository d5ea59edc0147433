"""The Spatially Adaptive Dataset (SAD), the PAFU paper's toy proof.

Images are 89x89 uniform 8-bit noise in (0, 1] (levels 1..255 / 255) with
black pixels on a sparse grid;
the target dilates every black pixel to a 5x5 black square and leaves the other
pixels unchanged. Two kernels solve it exactly: a Dirac (keep the pixel) and a
zero kernel (near a black pixel). Spatially shared convolutions cannot select
that way and stay far from zero error.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .module import PafuNet

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
    same data; it could represent the task in principle (depth 3 covers 5x5).
    """

    def __init__(self, width=8, depth=3):
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


def make_pafu(width=8, in_scale=255.0):
    net = PafuNet("generic", 1, n_kernels=2, kernel_sizes=[5, 5], width=width, depth=3,
                  channels=(1, 1))
    with torch.no_grad():
        net.bank.normal_(0, 0.1)
        net.in_mean.fill_(0.0)
        net.in_scale.fill_(in_scale)  # 8-bit units: "black" is 0, noise is >= 1
        # Start from uniform choices so that both kernels see pixels of every kind.
        net.selector[-1].weight.zero_()
        net.selector[-1].bias.zero_()
    return net


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def train_sad(model: str, steps: int, seed: int = 0, batch: int = 8, lr: float = 1e-2,
              size: int = 45, in_scale: float = 255.0, decorrelation: float = 0.0):
    """Train a PAFU (``model="pafu"``) or the plain CNN; returns (net, test MSE).

    The decorrelation penalty is off by default here: the optimal bank holds a
    zero kernel, which has no direction to normalise, and the penalty pushes it
    away from zero (measured: with weight 1e-3 the selector never picks it).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if model == "pafu":
        net = make_pafu(in_scale=in_scale)
        opt_sel = torch.optim.Adam(net.selector_parameters(), lr=lr)
        opt_bank = torch.optim.Adam([net.bank], lr=lr)
    else:
        net = PlainCNN()
        opt_sel = opt_bank = torch.optim.Adam(net.parameters(), lr=lr)
    for step in range(steps):
        x, y = sad_batch(rng, batch, size)
        if model == "pafu":
            tau = 1.0 * (0.1 / 1.0) ** (step / max(1, steps - 1))
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
    x, y = sad_batch(np.random.default_rng(seed), batch)
    with torch.no_grad():
        out = net(x, mode="argmax")[0] if model == "pafu" else net(x)
    return float(F.mse_loss(out, y))

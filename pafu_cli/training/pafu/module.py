"""The PAFU as a PyTorch module, for training; exports to :class:`PafuModel`.

Training follows Kokkinos et al. (arXiv 1911.10581): straight-through
Gumbel-softmax selection (forward one-hot, backward through the soft
probabilities), all n kernel responses computed as one convolution with
n x C_out outputs, and a decorrelation penalty ``||Wf Wf^T - I||_F^2`` on the
normalised flattened kernels. Inference is an argmax, as in the Numba engine,
or with ``mix`` 2 the blend of the two kernels with the largest logits,
weighted by their softmax (the model format's ``mix``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pafu_cli.filters.pafu.model import TASKS, PafuModel, with_features


def top_k_softmax(logits, k: int):
    """Weights (B, n, H, W): the softmax over each pixel's ``k`` largest logits at
    their kernels, zero elsewhere."""
    top, where = logits.topk(k, 1)
    return torch.zeros_like(logits).scatter(1, where, F.softmax(top, 1))


class PafuNet(nn.Module):
    """Selector CNN + kernel bank.

    Parameters
    ----------
    task : "demosaick" or "upscale"
    scale : SR factor (1 for demosaick)
    n_kernels : size of the bank
    kernel_sizes : odd support of each kernel (mixed sizes allowed)
    width, depth : selector: ``depth - 1`` 3x3 conv + ReLU layers of ``width``
        channels, then a 1x1 conv to ``n_kernels`` logits
    channels : (in, out) for ``task="generic"`` (a plain same-size filter, used
        by the SAD toy experiment; not exportable)
    selector_input : demosaick only: "packed" (the selector sees the 4-channel
        half-resolution quads, like the bank) or "full" (an ablation: the
        selector's 3x3 layers run on the full-resolution one-channel mosaic,
        then space-to-depth by 2 and the last 1x1 layer; not exportable to the
        engine)
    passthrough : demosaick only: every kernel copies the known sample of each
        quad position (R at (0,0), G at (0,1) and (1,0), B at (1,1)) unchanged;
        only the 8 missing colours are learned. The engine then skips those
        outputs (a third less filtering work).
    mix : kernels blended per pixel at inference (1: the argmax kernel; 2: the
        two largest logits' kernels weighted by the softmax of those two)
    features : 0 (a linear PAFU), or the odd size kf of a second bank
        (n, C_out, width, kf, kf) that each kernel applies to the selector's last
        hidden layer: the ``pafunet`` family, a small non-linear network whose
        last layer is a PAFU unit (its selector is the network's trunk)
    """

    # (output channel, input channel) of the samples a Bayer quad already holds:
    # output c*4 + dy*2 + dx is colour c at quad position (dy, dx).
    KNOWN_SAMPLES = ((0, 0), (5, 1), (6, 2), (11, 3))

    def __init__(
        self,
        task,
        scale,
        n_kernels=16,
        kernel_sizes=None,
        width=16,
        depth=3,
        channels=None,
        passthrough=False,
        selector_input="packed",
        mix=1,
        features=0,
    ):
        super().__init__()
        self.task, self.scale = task, scale
        if mix not in (1, 2) or mix > n_kernels:
            raise ValueError(f"mix must be 1 or 2 (and at most the {n_kernels} kernels), got {mix}")
        self.mix = mix
        if task == "generic":
            self.in_channels, self.out_channels = channels
            self.shuffle = 1
        else:
            spec = TASKS[task]
            self.in_channels = spec.in_channels
            self.out_channels = spec.out_channels(scale)
            self.shuffle = spec.shuffle(scale)
        sizes = list(kernel_sizes or [5] * n_kernels)
        if len(sizes) != n_kernels or any(k % 2 == 0 for k in sizes):
            raise ValueError(f"need {n_kernels} odd kernel sizes, got {sizes}")
        self.big_k = max(sizes)
        self.register_buffer("kernel_sizes", torch.tensor(sizes, dtype=torch.int32))
        mask = torch.zeros(n_kernels, 1, 1, self.big_k, self.big_k)
        for z, k in enumerate(sizes):
            m = (self.big_k - k) // 2
            mask[z, :, :, m : m + k, m : m + k] = 1
        self.register_buffer("mask", mask)
        # Outputs fixed to a centred Dirac (passthrough): excluded from learning.
        free = torch.ones(1, self.out_channels, 1, 1, 1)
        fixed = torch.zeros(1, self.out_channels, self.in_channels, self.big_k, self.big_k)
        if passthrough:
            if task != "demosaick":
                raise ValueError("passthrough is for demosaick models")
            c = (self.big_k - 1) // 2
            for o, i in self.KNOWN_SAMPLES:
                free[0, o] = 0
                fixed[0, o, i, c, c] = 1
        self.register_buffer("free", free)
        self.register_buffer("fixed", fixed)
        self.bank = nn.Parameter(
            torch.zeros(n_kernels, self.out_channels, self.in_channels, self.big_k, self.big_k)
        )
        if selector_input not in ("packed", "full") or (selector_input == "full" and task != "demosaick"):
            raise ValueError(f"selector_input {selector_input!r} is not available for {task}")
        self.full_res = selector_input == "full"
        layers, c = [], 1 if self.full_res else self.in_channels
        for _ in range(depth - 1):
            layers.append(nn.Conv2d(c, width, 3))
            c = width
        layers.append(nn.Conv2d(4 * c if self.full_res else c, n_kernels, 1))
        self.selector = nn.ModuleList(layers)
        self.feature_k = int(features)
        if self.feature_k:
            if depth < 2 or self.full_res or self.feature_k % 2 == 0 or self.feature_k > self.big_k:
                raise ValueError(
                    f"a feature bank needs a selector with a hidden layer (depth >= 2), an odd size at "
                    f"most the kernels' {self.big_k}, and the packed selector; got size {features}"
                )
            self.fbank = nn.Parameter(
                torch.zeros(n_kernels, self.out_channels, width, self.feature_k, self.feature_k)
            )
        self.register_buffer("in_mean", torch.full((self.in_channels,), 0.5))
        self.register_buffer("in_scale", torch.full((self.in_channels,), 2.0))

    @property
    def n_kernels(self):
        return self.bank.shape[0]

    @property
    def model_scale(self) -> int:
        """The exported model's ``scale``: the task's only scale where it has no choice."""
        spec = TASKS[self.task]
        return self.scale if spec.scaled else spec.scales[0]

    def margin(self) -> int:
        """Output pixels near a patch border that depend on padding (excluded from losses)."""
        radii = [(c.kernel_size[0] - 1) // 2 for c in self.selector]
        reach = max(sum(radii), (self.big_k - 1) // 2)
        if self.feature_k:
            reach = max(reach, sum(radii[:-1]) + (self.feature_k - 1) // 2)
        return reach * self.shuffle

    def masked_bank(self):
        return self.bank * self.mask * self.free + self.fixed

    def prepare(self, x):
        """Network input from a batch: RGGB mosaics (B,1,H,W) are packed into quads."""
        return F.pixel_unshuffle(x, 2) if self.task == "demosaick" else x

    def logits(self, x):
        return self.trunk(x)[0]

    def trunk(self, x):
        """The selector on ``x``: (logits, the last hidden layer's ReLU output or None)."""
        hidden = None
        h = (x - self.in_mean.view(1, -1, 1, 1)) * self.in_scale.view(1, -1, 1, 1)
        if self.full_res:  # back to the full-resolution mosaic for the 3x3 layers
            h = F.pixel_shuffle(h, 2)
        for i, conv in enumerate(self.selector):
            if self.full_res and i == len(self.selector) - 1:
                h = F.pixel_unshuffle(h, 2)
            r = (conv.kernel_size[0] - 1) // 2
            if r:
                h = F.pad(h, (r, r, r, r), mode="reflect")
            h = conv(h)
            if i < len(self.selector) - 1:
                h = hidden = F.relu(h)
        return h, hidden

    def masked_fbank(self):
        return self.fbank * self.free

    def responses(self, x, hidden=None):
        """All kernels at all pixels: (B, n, C_out, H, W); with a feature bank,
        ``hidden`` is the selector's last hidden layer (:meth:`trunk`)."""
        r = (self.big_k - 1) // 2
        w = self.masked_bank().reshape(-1, self.in_channels, self.big_k, self.big_k)
        y = F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), w)
        if self.feature_k:
            rf, kf = (self.feature_k - 1) // 2, self.feature_k
            wf = self.masked_fbank().reshape(-1, self.fbank.shape[2], kf, kf)
            y = y + F.conv2d(F.pad(hidden, (rf, rf, rf, rf), mode="reflect") if rf else hidden, wf)
        b, _, h, wd = y.shape
        return y.view(b, self.n_kernels, self.out_channels, h, wd)

    def mix_weights(self, logits):
        """Inference selection weights (B, n, H, W): one-hot at the argmax (``mix``
        1), or the softmax of the two largest logits at their kernels (``mix`` 2;
        differentiable in the logits, the choice of the two is not)."""
        if self.mix == 1:
            return F.one_hot(logits.argmax(1), self.n_kernels).permute(0, 3, 1, 2).to(logits.dtype)
        return top_k_softmax(logits, self.mix)

    def forward(self, batch, tau=1.0, mode="gumbel"):
        """Output image (B, 3, sH, sW) and the selection weights.

        ``mode``: "gumbel" (straight-through Gumbel-softmax, training),
        "argmax" (the argmax kernel alone), "infer" (the model's inference, as
        the Numba engine: the argmax, or the top-two blend with ``mix`` 2).
        """
        x = self.prepare(batch)
        logits, hidden = self.trunk(x)
        if mode == "gumbel":
            u = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
            g = -torch.log(-torch.log(u))
            soft = F.softmax((logits + g) / tau, dim=1)
            hard = F.one_hot(soft.argmax(1), self.n_kernels).permute(0, 3, 1, 2).to(soft.dtype)
            sel = hard - soft.detach() + soft
        elif mode == "infer":
            sel = self.mix_weights(logits)
        elif mode == "argmax":
            sel = F.one_hot(logits.argmax(1), self.n_kernels).permute(0, 3, 1, 2).to(logits.dtype)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        y = (self.responses(x, hidden) * sel.unsqueeze(2)).sum(1)
        return F.pixel_shuffle(y, self.shuffle), sel

    def decorrelation(self):
        """``||Wf Wf^T - I||_F^2`` over the normalised, flattened (padded) kernels."""
        wf = (self.bank * self.mask * self.free).flatten(1)
        wf = wf / wf.norm(dim=1, keepdim=True).clamp(min=1e-12)
        gram = wf @ wf.t()
        eye = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
        return ((gram - eye) ** 2).sum()

    def selector_parameters(self):
        return list(self.selector.parameters())

    def load_model(self, model: PafuModel) -> int:
        """Take the selector and bank of an exported model (a warm start; the inverse of
        :meth:`to_model`). Returns the model's number of kernels.

        The network may have a multiple of the model's kernels (a grown bank): kernel
        ``z`` and its selector row are then copies of the model's ``z mod n``, so the
        network computes what the model does until the copies are split apart (see
        ``refit.grow_bank``). The network's kernels may also be larger than the model's
        (a larger support): they start as the model's, zero-padded. Raises ValueError,
        naming what differs, unless task, scale and selector shape agree and no kernel
        is smaller than the model's (repeated, for a grown bank)."""
        where = model.path or model.name or "the model"
        n0 = model.n_kernels
        copies = self.n_kernels // n0 if self.n_kernels % n0 == 0 else 1
        sizes = model.kernel_sizes.tolist() * copies
        shapes = [tuple(w.shape) for w in model.selector_weights]
        shapes[-1] = (n0 * copies,) + shapes[-1][1:]
        mine_sizes = self.kernel_sizes.tolist()
        if len(sizes) == len(mine_sizes) and all(a >= b for a, b in zip(mine_sizes, sizes)):
            sizes = mine_sizes  # equal, or larger supports (zero-padded)
        mine_shapes = [tuple(c.weight.shape) for c in self.selector]
        if self.feature_k and len(mine_shapes) == len(shapes):
            # a wider trunk: the model's channels first, the new ones start unused
            shapes = [
                (max(a[0], b[0]) if i < len(shapes) - 1 else b[0], max(a[1], b[1])) + b[2:]
                for i, (a, b) in enumerate(zip(mine_shapes, shapes))
            ]
        fb = getattr(model, "feature_bank", None)
        checks = (
            ("task", self.task, model.task),
            ("scale", self.model_scale, model.scale),
            ("kernel sizes", mine_sizes, sizes),
            ("selector layer shapes", mine_shapes, shapes),
            ("feature kernel size", self.feature_k, self.feature_k if fb is None else fb.shape[-1]),
        )
        for what, a, b in checks:
            if a != b:
                raise ValueError(
                    f"{where}: cannot start from it: {what} {b} (this training: {a}); give the "
                    "model's task, scale, --kernel-sizes, --width and --depth, and --kernels a "
                    f"multiple of its {n0}"
                )
        rows = torch.arange(self.n_kernels) % n0
        with torch.no_grad():
            for conv, w, b in zip(self.selector, model.selector_weights, model.selector_biases):
                w, b = torch.from_numpy(np.ascontiguousarray(w)), torch.from_numpy(np.ascontiguousarray(b))
                if conv is self.selector[-1]:
                    w, b = w[rows], b[rows]
                co, ci = w.shape[:2]
                conv.weight[:co, ci:] = 0  # a grown layer: old outputs ignore the new channels
                conv.weight[:co, :ci] = w
                conv.bias[:co] = b
            if self.feature_k:
                self.fbank.zero_()
                if fb is not None:
                    self.fbank[:, :, : fb.shape[2]] = torch.from_numpy(np.ascontiguousarray(fb))[rows]
            self.in_mean.copy_(torch.from_numpy(model.selector_input_mean))
            self.in_scale.copy_(torch.from_numpy(model.selector_input_scale))
            bank = torch.from_numpy(model.bank)[rows]
            pad = (self.big_k - bank.shape[-1]) // 2
            self.bank.copy_(F.pad(bank, (pad, pad, pad, pad)) * self.mask)
        return n0

    @classmethod
    def from_model(
        cls,
        model: PafuModel,
        n_kernels: int = 0,
        kernel_size: int = 0,
        mix: int = 0,
        features: int = 0,
        width: int = 0,
    ) -> PafuNet:
        """A network of an exported model's architecture (task, scale, kernel sizes,
        selector width and depth, ``mix`` unless given), loaded with it (:meth:`load_model`).
        ``n_kernels``: a multiple of the model's (a grown bank, its copies not yet
        split); ``kernel_size``: a smallest support (the kernels zero-padded to it);
        ``features``: a feature bank of this size (a ``pafunet`` model's own by
        default), zero at the start if the model has none; ``width``: a wider
        selector (with ``features``; the new channels start unused)."""
        n = n_kernels or model.n_kernels
        if n % model.n_kernels:
            raise ValueError(
                f"{model.path or model.name}: {n} kernels is not a multiple of its {model.n_kernels}"
            )
        sizes = [max(kernel_size, int(k)) for k in model.kernel_sizes.tolist()] * (n // model.n_kernels)
        fb = getattr(model, "feature_bank", None)
        features = features or (0 if fb is None else fb.shape[-1])
        width0 = model.selector_weights[0].shape[0]
        net = cls(
            model.task,
            model.scale,
            n,
            sizes,
            max(width, width0) if features else width0,
            len(model.selector_weights),
            mix=mix or model.mix,
            features=features,
        )
        net.load_model(model)
        return net

    def to_model(self, name="", description="", provenance=None, noise_sigma=0.0) -> PafuModel:
        """Export to the ``.npz`` model format's in-memory form."""
        if self.full_res:
            raise ValueError("a full-resolution selector (ablation) has no engine export")
        ws = tuple(c.weight.detach().cpu().numpy().astype(np.float32) for c in self.selector)
        bs = tuple(c.bias.detach().cpu().numpy().astype(np.float32) for c in self.selector)
        model = PafuModel(
            task=self.task,
            scale=self.model_scale,
            input_layout=TASKS[self.task].layout,
            selector_weights=ws,
            selector_biases=bs,
            selector_input_mean=self.in_mean.cpu().numpy().astype(np.float32),
            selector_input_scale=self.in_scale.cpu().numpy().astype(np.float32),
            bank=self.masked_bank().detach().cpu().numpy().astype(np.float32),
            kernel_sizes=self.kernel_sizes.cpu().numpy().astype(np.int32),
            name=name,
            description=description,
            provenance=provenance or {},
            noise_sigma=float(noise_sigma),
            mix=self.mix,
        )
        if self.feature_k:
            return with_features(model, self.masked_fbank().detach().cpu().numpy().astype(np.float32))
        return model

"""Hand-made PAFU models: bilinear demosaicking, nearest and bilinear upscaling.

Each is an exact PAFU (a constant selector and a one-kernel bank). They prove
the engine independently of training, and the bilinear demosaick bank is what
reproduces LibRaw's ``LINEAR`` rendering.
"""

from __future__ import annotations

import numpy as np

from pafu_cli.filters.pafu.model import LAYOUTS, PafuModel

_RGGB = np.array([[0, 1], [1, 2]])  # colour at each quad position


_QUAD_CH = np.array([[0, 1], [2, 3]])  # packed channel of each quad position


def _constant_selector(in_channels: int):
    w = np.zeros((1, in_channels, 1, 1), np.float32)
    return (w,), (np.zeros(1, np.float32),)


def _model(task, scale, bank, name, description):
    ci = bank.shape[2]
    ws, bs = _constant_selector(ci)
    return PafuModel(
        task=task,
        scale=scale,
        input_layout=LAYOUTS[task],
        selector_weights=ws,
        selector_biases=bs,
        selector_input_mean=np.zeros(ci, np.float32),
        selector_input_scale=np.ones(ci, np.float32),
        bank=np.ascontiguousarray(bank, np.float32),
        kernel_sizes=np.array([bank.shape[3]], np.int32),
        name=name,
        description=description,
        provenance={
            "command": "analytic (pafu_cli.filters.pafu.analytic)",
            "data": "none",
            "date": "",
            "quality": "{}",
            "seed": None,
        },
    )


def bilinear_demosaick_model() -> PafuModel:
    """Bilinear demosaicking (LibRaw ``LINEAR``) as a packed-RGGB PAFU bank.

    Green at red/blue sites is the mean of the 4 edge neighbours; red/blue are
    the mean of the 2 edge or 4 diagonal neighbours of that colour; measured
    samples are kept.
    """
    green = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float64) / 4
    redblue = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float64) / 4
    bank = np.zeros((1, 12, 4, 3, 3))
    for py in range(2):
        for px in range(2):
            for c in range(3):
                full = green if c == 1 else redblue
                for ty in (-1, 0, 1):
                    for tx in (-1, 0, 1):
                        sy, sx = py + ty, px + tx
                        qy, qx = sy // 2, sx // 2
                        iy, ix = sy % 2, sx % 2
                        if _RGGB[iy, ix] != c:
                            continue
                        out_ch = c * 4 + py * 2 + px
                        bank[0, out_ch, _QUAD_CH[iy, ix], qy + 1, qx + 1] += full[ty + 1, tx + 1]
    return _model("demosaick", 1, bank, "bilinear", "bilinear demosaicking (analytic bank)")


def nearest_upscale_model(scale: int) -> PafuModel:
    """Nearest-neighbour upscaling by ``scale`` as a one-kernel 1x1 bank."""
    bank = np.zeros((1, 3 * scale * scale, 3, 1, 1))
    for c in range(3):
        bank[0, c * scale * scale : (c + 1) * scale * scale, c, 0, 0] = 1.0
    return _model("upscale", scale, bank, f"nearest_x{scale}", "nearest-neighbour upscaling")


def bilinear_upscale_model(scale: int) -> PafuModel:
    """Bilinear upscaling with half-pixel centres (``align_corners=False``),
    reflected borders, as a one-kernel 3x3 bank."""
    taps1d = np.zeros((scale, 3))
    for d in range(scale):
        f = (d + 0.5) / scale - 0.5
        if f >= 0:
            taps1d[d, 1], taps1d[d, 2] = 1 - f, f
        else:
            taps1d[d, 0], taps1d[d, 1] = -f, 1 + f
    bank = np.zeros((1, 3 * scale * scale, 3, 3, 3))
    for c in range(3):
        for dy in range(scale):
            for dx in range(scale):
                bank[0, c * scale * scale + dy * scale + dx, c] = np.outer(taps1d[dy], taps1d[dx])
    return _model("upscale", scale, bank, f"bilinear_x{scale}", "bilinear upscaling")

"""Speed of the ``--quality high`` (pafunet) models against the linear defaults, in one
run on this machine (the machine's speed drifts: compare within a run).

Upscale: a 1500 x 1000 RGB array (Kodak tiles), x2 / x3 / x4, output MP/s, and the
end-to-end ``pafu upscale`` of a 1 MP PNG. Demosaick: a 24 MP RGGB mosaic array
(the core, as ``benchmarks/speed.py``), each shipped ``_high`` model against its
linear form. Median of ``--repeats`` after a warm-up.

    python benchmarks/high_speed.py [--data ../shared/data] [--repeats 5]
    python benchmarks/high_speed.py --variants   # trunk width x feature taps against speed (needs torch)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from speed import _median_time as median_time  # noqa: E402  (a warm-up call, then the median)
from speed import make_mosaic  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-demosaick", action="store_true")
    ap.add_argument(
        "--variants",
        action="store_true",
        help="only: upscale_x2 grown to trunk widths 16/24/32 with 1x1 or 3x3 feature taps, "
        "and a trunk one layer deeper (random weights), engine time against the linear model",
    )
    a = ap.parse_args()
    if a.variants:
        return variants(a.repeats)
    import imageio.v3 as iio

    import pafu_cli
    from pafu_cli.models.registry import list_models

    img = iio.imread(sorted((Path(a.data) / "Kodak24").glob("*.png"))[0])
    img = np.ascontiguousarray(np.tile(img, (2, 2, 1))[:1000, :1500])
    x = img.astype(np.float32) / 255
    print("| case | seconds | output MP/s | vs linear |")
    print("|---|---|---|---|")
    for s in (2, 3, 4):
        base = None
        for name in (f"upscale_x{s}", f"upscale_x{s}_high"):
            if name not in list_models():
                continue
            t = median_time(lambda name=name, s=s: pafu_cli.upscale(x, s, model=name), a.repeats)
            base = base or t
            print(f"| upscale x{s} `{name}`, 1500x1000 | {t:.3f} | {1.5 * s * s / t:.1f} | {t / base:.2f}x |")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "one.png"
        iio.imwrite(png, img[:1000, :1000])
        for s in (2, 3, 4):
            base = None
            for q in ("standard", "high"):
                if q == "high" and f"upscale_x{s}_high" not in list_models():
                    continue
                cmd = ["pafu", "-q", "upscale", "-s", str(s), "--quality", q, "--overwrite", str(png)]
                cmd.append(str(Path(tmp) / f"out_{s}_{q}.png"))
                t = median_time(lambda cmd=cmd: subprocess.run(cmd, check=True), max(1, a.repeats // 2))
                base = base or t
                print(
                    f"| end to end `pafu upscale -s {s} --quality {q}`, 1 MP PNG | {t:.3f} | "
                    f"{s * s / t:.1f} | {t / base:.2f}x |"
                )
    if a.no_demosaick:
        return
    cfa = make_mosaic(Path(a.data), 4000, 6000).astype(np.float32) / np.float32(65535)
    for linear in ("demosaick", "demosaick_denoise_s5", "demosaick_denoise_s10"):
        if f"{linear}_high" not in list_models():
            continue
        base = None
        for name in (linear, f"{linear}_high"):
            t = median_time(
                lambda name=name: pafu_cli.demosaick(cfa, "RGGB", model=name), max(1, a.repeats // 2)
            )
            base = base or t
            print(f"| demosaick `{name}`, 24 MP mosaic (core) | {t:.3f} | {24 / t:.1f} | {t / base:.2f}x |")


def variants(repeats):
    """Engine time of upscale_x2 grown by ``--features`` / ``--width`` (the cost side
    of docs/pafunet.md's ablation), against the linear model, in one run."""
    import torch

    from pafu_cli.filters.pafu import engine
    from pafu_cli.models.registry import resolve_model
    from pafu_cli.training.pafu.module import PafuNet

    lin = resolve_model("upscale_x2", "upscale", 2)
    x = np.random.default_rng(0).random((1000, 1500, 3), dtype=np.float32)
    base = median_time(lambda: engine.run(lin, x), repeats)
    print(f"| linear upscale_x2 | {base:.3f} s | {6 / base:.1f} MP/s | 1.00x |")
    for width in (16, 24, 32):
        for kf in (1, 3):
            net = PafuNet.from_model(lin, features=kf, width=width)
            with torch.no_grad():
                net.fbank.normal_(0, 0.01)
            m = net.to_model()
            t = median_time(lambda m=m: engine.run(m, x), repeats)
            label = f"width {width}, {kf}x{kf} feature taps"
            print(f"| {label} | {t:.3f} s | {6 / t:.1f} MP/s | {t / base:.2f}x |")
    # Depth: a third hidden layer (selector depth 4), random weights (the cost does not
    # depend on which kernels are picked).
    for width in (16, 24):
        net = PafuNet(
            "upscale", 2, lin.n_kernels, [7] * lin.n_kernels, width, depth=4, mix=lin.mix, features=3
        )
        m = net.to_model()
        t = median_time(lambda m=m: engine.run(m, x), repeats)
        label = f"depth 4 (3 hidden layers), width {width}, 3x3 feature taps"
        print(f"| {label} | {t:.3f} s | {6 / t:.1f} MP/s | {t / base:.2f}x |")


if __name__ == "__main__":
    main()

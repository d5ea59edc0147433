"""Speed and peak memory of x8 guided depth upsampling: pafu's JBU against its
anchors, timed in one run on one machine.

Usage::

    python benchmarks/guided_speed.py [--threads N] [--repeats 10] [--repeats-big 3]
        [--scale 8] [--no-big] [--no-memory] [--json FILE]

Needs pafu (numpy, numba, Pillow) and, for the OpenCV rows,
``opencv-contrib-python-headless`` (``cv2.ximgproc``), a benchmark dependency
only. Run it in an environment with both so that they are timed in the same run.

Inputs (made here, seeded): a depth map that is smooth (ramps and waves) with
steps (boxes and discs in front, with slanted faces), made at full resolution
and box-averaged to 1/8 (mixed depths at the edges, as a sensor gives), and an
RGB uint8 guide whose segments follow the depth's, with shading, a random
texture and painted stripes that have no depth edge. Outputs are 640x480 and
4000x3000 (12 MP) from LR maps of 80x60 and 500x375.

What is timed (the median of ``--repeats`` calls after one warm-up call, so
Numba's compilation is excluded; the methods are called in turn, round after
round, so that a drifting machine load is shared); every call starts from the float32 LR map and
the uint8 guide and returns the full-resolution float32 map:

* pafu default: ``pafu_cli.guided_upsample(lowres, guide)``, the shipped learned
  model (its guide features, low-res branch and output stage, all of it).
* pafu jbu: ``pac.jbu(lowres, guide)`` with its defaults (all of it: tap
  tables, the guide's box means per sample, the kernel).
* pafu bicubic: ``pac.resize(lowres, (H, W), "bicubic")``.
* Pillow bicubic: the P1 protocol's upsampler (``pillow_bicubic``).
* OpenCV bicubic: ``cv2.resize(lowres, (W, H), INTER_CUBIC)``.
* OpenCV guided filter: that cv2 bicubic, then ``guidedFilter(guide, up, 8,
  0.01 * 255**2)`` (r 8 as PAC.md's speed anchor; eps 0.01 for a [0, 1] guide,
  the value that reproduces its quality anchors; the time does not depend on eps).
* OpenCV joint bilateral: that cv2 bicubic, the guide converted to float32 (the
  filter needs the guide and the map in one depth), then ``jointBilateralFilter(
  guide32, up, -1, 16, 2)`` (sigma_space 2 as PAC.md: a 7x7 window).
* OpenCV FGS: that cv2 bicubic, then ``fastGlobalSmootherFilter(guide, up, 100, 4)``.

Memory: each measured call runs in a fresh Python process at 12 MP. After the
inputs are made and a small warm-up call has compiled the kernels, the peak RSS
is reset (``/proc/self/clear_refs``) and one call is made: "peak RSS increase" =
VmHWM after the call - VmRSS before it. A second call under ``tracemalloc``
gives the peak of the NumPy allocations (Numba's own allocations are not traced).
Both are compared with the arrays that any implementation must hold: the inputs
(LR float32 + guide uint8) plus the output (float32); the target is a peak (held
inputs + increase) under twice that.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = {"640x480": (480, 640), "12 MP": (3000, 4000)}
TARGETS = {"640x480": 0.060, "12 MP": 3.0}  # seconds, 2 cores: the default and jbu
DEFAULT = "pafu default (learned guided_upsample)"
PAC_ANCHORS = {  # ../shared/PAC.md section 5, 2 cores: (640x480 s, 12 MP s)
    "OpenCV guided filter": (0.014, 0.78),
    "OpenCV joint bilateral": (0.057, 4.2),
    "OpenCV FGS": (0.007, 0.61),
}


def make_inputs(shape, scale, seed=0):
    """(lowres float32 (H/s, W/s), guide uint8 (H, W, 3)) of a synthetic scene."""
    rng = np.random.default_rng(seed)
    hh, ww = shape
    y = (np.arange(hh, dtype=np.float32)[:, None] + 0.5) / hh
    x = (np.arange(ww, dtype=np.float32)[None, :] + 0.5) / ww
    depth = 3.0 + 1.2 * x - 0.6 * y + 0.15 * np.sin(7.0 * x + 1.0) * np.cos(5.0 * y)
    label = np.zeros(shape, np.uint8)
    for k in range(1, 9):
        cy, cx, ry, rx = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), *rng.uniform(0.05, 0.2, 2)
        if k % 2:
            inside = (np.abs(y - cy) < ry) & (np.abs(x - cx) < rx)
        else:
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1.0
        near = rng.uniform(0.8, 2.5) + rng.uniform(-0.5, 0.5) * (x - cx) + rng.uniform(-0.5, 0.5) * (y - cy)
        depth = np.where(inside, near, depth)
        label[inside] = k
    depth = depth.astype(np.float32)
    h, w = hh // scale, ww // scale
    lowres = depth[: h * scale, : w * scale].reshape(h, scale, w, scale).mean(axis=(1, 3), dtype=np.float32)
    del depth
    colours = rng.uniform(30, 220, (9, 3)).astype(np.float32)
    shade = 0.85 + 0.15 * np.sin(3.0 * x + 2.0 * y)
    stripes = ((x * 23.0 + y * 5.0) % 1.0 < 0.1) & (label == 0)  # colour edges, no depth edge
    coarse = rng.normal(0.0, 12.0, (hh // 16 + 1, ww // 16 + 1, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:hh, :ww]
    guide = colours[label] * shade[:, :, None] + texture
    guide += rng.normal(0.0, 6.0, guide.shape).astype(np.float32)
    guide[stripes] *= 0.6
    return np.ascontiguousarray(lowres), np.clip(guide, 0, 255).astype(np.uint8)


def methods(have_cv2: bool) -> dict:
    """{name: fn(lowres, guide) -> (H, W) float32}."""
    from pafu_cli import guided_upsample, pac
    from pafu_cli.evaluation.depth import pillow_bicubic

    out = {
        DEFAULT: lambda lr, g: guided_upsample(lr, g),
        "pafu jbu (defaults)": lambda lr, g: pac.jbu(lr, g),
        "pafu bicubic (pac.resize)": lambda lr, g: pac.resize(lr, g.shape[:2], "bicubic"),
        "Pillow bicubic (P1 upsampler)": lambda lr, g: pillow_bicubic(lr, g.shape[1], g.shape[0]),
    }
    if have_cv2:
        import cv2

        xi = cv2.ximgproc

        def up(lr, g):
            return cv2.resize(lr, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_CUBIC)

        out["OpenCV bicubic (cv2.resize INTER_CUBIC)"] = up
        out["OpenCV guided filter"] = lambda lr, g: xi.guidedFilter(g, up(lr, g), 8, 0.01 * 255.0**2)
        out["OpenCV joint bilateral"] = lambda lr, g: xi.jointBilateralFilter(
            g.astype(np.float32), up(lr, g), -1, 16.0, 2.0
        )
        out["OpenCV FGS"] = lambda lr, g: xi.fastGlobalSmootherFilter(g, up(lr, g), 100.0, 4.0)
    return out


def median_time(fn, repeats):
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_times(calls: dict, repeats) -> dict:
    """Median seconds per call: one warm-up call each, then ``repeats`` rounds
    that call each once in turn (so that a drifting machine load is shared)."""
    for fn in calls.values():
        fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def jbu_parts(lr, g, repeats):
    """Seconds of jbu's parts (its own steps, through internal functions that may
    change): tap tables, guide box means per LR sample, the kernel."""
    from pafu_cli.filters.pac import resample as R

    shape, size = lr.shape, g.shape[:2]
    fscale = R.range_scale(g.dtype, 0.08)
    parts = {}
    parts["tap tables (axis_taps, NumPy)"] = median_time(
        lambda: R._taps(shape, size, R._gauss(1.0, 2.0), 2.0, True), repeats
    )
    parts["guide box means (resize box)"] = median_time(lambda: R.resize(g, shape, "box"), repeats)
    taps = R._taps(shape, size, R._gauss(1.0, 2.0), 2.0, True)
    samples = np.ascontiguousarray(R.resize(g, shape, "box") * np.float32(fscale), np.float32)
    parts["kernel (resample, Gaussian range)"] = median_time(
        lambda: R._run(lr, None, size, taps, R.K.GAUSSIAN, samples, g, fscale), repeats
    )
    return parts


def _status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def memory_child(name, shape, scale, threads):
    """Run in a fresh process: peak memory of one call; prints a JSON line."""
    import tracemalloc

    have_cv2 = name.startswith("OpenCV")
    if have_cv2:
        import cv2

        cv2.setNumThreads(threads)
    import numba

    numba.set_num_threads(threads)
    fn = methods(have_cv2)[name]
    lr, g = make_inputs(shape, scale)
    small_lr, small_g = make_inputs((96, 128), scale, seed=1)
    fn(small_lr, small_g)  # compile; start the thread pools
    gc.collect()
    rss0 = _status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    hwm0 = _status_kb("VmHWM")
    y = fn(lr, g)
    hwm1 = _status_kb("VmHWM")
    out_bytes = y.nbytes
    del y
    gc.collect()
    tracemalloc.start()
    fn(lr, g)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "method": name,
                "hwm_reset": reset,
                "rss_before_mb": rss0 / 1024,
                "hwm_before_mb": hwm0 / 1024,
                "hwm_after_mb": hwm1 / 1024,
                "peak_increase_mb": (hwm1 - rss0) / 1024,
                "tracemalloc_peak_mb": traced_peak / 2**20,
                "lowres_mb": lr.nbytes / 2**20,
                "guide_mb": g.nbytes / 2**20,
                "output_mb": out_bytes / 2**20,
            }
        )
    )


def measure_memory(name, shape, scale, threads):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", name]
    cmd += ["--threads", str(threads), "--scale", str(scale), "--_shape", f"{shape[0]}x{shape[1]}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"memory child for {name} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Time x8 guided upsampling (pafu default, jbu, bicubic, OpenCV guided/joint "
        "bilateral/FGS) to 640x480 and 12 MP in one run, and measure pafu's peak memory at 12 MP."
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="Numba and OpenCV threads")
    ap.add_argument("--repeats", type=int, default=10, help="timed calls at 640x480 (median)")
    ap.add_argument("--repeats-big", type=int, default=3, help="timed calls at 12 MP (median)")
    ap.add_argument("--scale", type=int, default=8)
    ap.add_argument("--no-big", action="store_true", help="only 640x480")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    ap.add_argument("--_shape", dest="shape", default="3000x4000", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    # Before Numba is imported, so that --threads may exceed the core count.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(args.threads, os.cpu_count() or 1)))

    if args.memory_child:
        shape = tuple(int(v) for v in args.shape.split("x"))
        memory_child(args.memory_child, shape, args.scale, args.threads)
        return 0

    import numba

    numba.set_num_threads(args.threads)
    have_cv2 = False
    try:
        import cv2

        have_cv2 = hasattr(cv2, "ximgproc")
        cv2.setNumThreads(args.threads)
    except ImportError:
        pass
    if not have_cv2:
        print("cv2.ximgproc not importable: OpenCV rows left out", file=sys.stderr)

    t_start = time.perf_counter()
    fns = methods(have_cv2)
    sizes = {k: v for k, v in SIZES.items() if not (args.no_big and k != "640x480")}
    times = {name: {} for name in fns}
    parts = {}
    for label, shape in sizes.items():
        lr, g = make_inputs(shape, args.scale)
        repeats = args.repeats if label == "640x480" else args.repeats_big
        print(f"{label}: LR {lr.shape[1]}x{lr.shape[0]} -> {shape[1]}x{shape[0]}", file=sys.stderr)
        calls = {name: functools.partial(fn, lr, g) for name, fn in fns.items()}
        for name, t in interleaved_times(calls, repeats).items():
            times[name][label] = t
            print(f"  {name}: {t * 1e3:.1f} ms", file=sys.stderr, flush=True)
        try:
            parts[label] = jbu_parts(lr, g, repeats)
        except (AttributeError, TypeError) as exc:  # internal API changed
            print(f"  jbu parts not measured: {exc}", file=sys.stderr)
        del lr, g
        gc.collect()

    mem = []
    if not args.no_memory:
        names = [DEFAULT, "pafu jbu (defaults)", "pafu bicubic (pac.resize)"]
        names += ["OpenCV guided filter"] if have_cv2 else []
        for name in names:
            print(f"memory at 12 MP: {name}", file=sys.stderr, flush=True)
            mem.append(measure_memory(name, SIZES["12 MP"], args.scale, args.threads))
    total = time.perf_counter() - t_start

    cores = os.cpu_count()
    print(f"\n## x{args.scale} guided upsampling, {args.threads} threads ({cores} cores)\n")
    cols = list(sizes)
    head = "| method | " + " | ".join(f"{c} ({'ms' if c == '640x480' else 's'})" for c in cols)
    print(head + " | PAC.md anchor |\n|---|" + "---|" * (len(cols) + 1))
    for name, t in times.items():
        cells = [f"{t[c] * 1e3:.1f}" if c == "640x480" else f"{t[c]:.3f}" for c in cols]
        anchor = PAC_ANCHORS.get(name)
        anchor_s = f"{anchor[0] * 1e3:.0f} ms / {anchor[1]:.2f} s" if anchor else ""
        if name in (DEFAULT, "pafu jbu (defaults)"):
            anchor_s = "target 60 ms / 3 s"
        print(f"| {name} | " + " | ".join(cells) + f" | {anchor_s} |")
    print(
        "\nOpenCV rows include their cv2.resize INTER_CUBIC upsampling (and, for the joint bilateral, "
        "the guide's conversion to float32); medians after a warm-up call."
    )
    for short, name in (("default", DEFAULT), ("jbu", "pafu jbu (defaults)")):
        tt = times[name]
        for c in cols:
            ok = tt[c] <= TARGETS[c]
            print(
                f"- {short} {c}: {tt[c]:.3f} s vs target {TARGETS[c]:g} s: "
                + (
                    f"met ({tt[c] / TARGETS[c]:.0%} of it)"
                    if ok
                    else f"MISSED by {tt[c] / TARGETS[c] - 1:.0%}"
                )
            )
    jt = times["pafu jbu (defaults)"]
    if parts:
        print("\n### pafu jbu, its parts (s)\n")
        print("| part | " + " | ".join(parts) + " |\n|---|" + "---|" * len(parts))
        for p in next(iter(parts.values())):
            print(f"| {p} | " + " | ".join(f"{parts[c][p]:.4f}" for c in parts) + " |")
        print("| jbu total (from the table above) | " + " | ".join(f"{jt[c]:.4f}" for c in parts) + " |")
    if mem:
        print("\n### Peak memory at 12 MP (fresh process per row; MB = 2^20 bytes)\n")
        print(
            "| method | inputs (LR + guide) | output | in + out | peak RSS increase | tracemalloc peak "
            "| (inputs + increase) / (in + out) |\n|---|---|---|---|---|---|---|"
        )
        for m in mem:
            inputs = m["lowres_mb"] + m["guide_mb"]
            io = inputs + m["output_mb"]
            ratio = (inputs + m["peak_increase_mb"]) / io
            note = "" if m["hwm_reset"] else " (VmHWM not reset)"
            print(
                f"| {m['method']} | {inputs:.1f} | {m['output_mb']:.1f} | {io:.1f} | "
                f"{m['peak_increase_mb']:.1f}{note} | {m['tracemalloc_peak_mb']:.1f} | {ratio:.2f} |"
            )
        print("\nTarget: (inputs + increase) / (in + out) < 2.")
    print(f"\nrun time {total:.0f} s")

    if args.json:
        payload = {
            "threads": args.threads,
            "cores": cores,
            "scale": args.scale,
            "seconds": times,
            "jbu_parts": parts,
            "memory": mem,
            "pac_anchors": PAC_ANCHORS,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

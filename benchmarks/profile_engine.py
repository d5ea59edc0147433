"""Where the banded engine's time goes: one thread, a 24 MP mosaic, per stage.

Runs the production engine (:func:`pafu_cli.filters.pafu.engine.run_mosaic`)
on one thread, stopping every band after stage k (1: input fill, 2: hidden
selector layers, 3: last layer + choice, 4: the bank's input band, 5: the
kernel apply; ``stages`` of ``_band.Plan``); a stage's time is the difference
to the run that stops before it (median of ``--repeats``). Also prints each
stage's multiply-accumulates per second against the core's FP32 peak, measured
on independent 16-lane FMA chains with no memory traffic (the nominal 2.6 GHz x
16 lanes understates it: the core boosts).

Usage::

    python benchmarks/profile_engine.py [--model demosaick] [--repeats 3]
    PAFU_SIMD=0 python benchmarks/profile_engine.py   # the portable kernels
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.core.extending import intrinsic

from pafu_cli.demosaick import packing_pad
from pafu_cli.filters.pafu import _band, _simd, engine
from pafu_cli.filters.pafu._simd import I64, VEC, fma16
from pafu_cli.models.registry import resolve_model

HERE = Path(__file__).resolve().parent


@intrinsic
def _fma_chains(typingctx, n):
    """``n`` rounds of 8 independent 16-lane FMA chains (no memory traffic): the
    core's achievable FP32 multiply-accumulate rate. Returns lane 0 of their sum."""
    sig = types.float32(n)

    def codegen(context, builder, signature, args):
        i64, vty = I64, VEC
        fma = fma16(builder)
        count = context.cast(builder, args[0], signature.args[0], types.int64)
        a = ir.Constant(vty, [0.999] * 16)
        b = ir.Constant(vty, [0.001] * 16)
        entry = builder.basic_block
        loop = builder.append_basic_block("fma.loop")
        done = builder.append_basic_block("fma.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        i = builder.phi(i64)
        accs = [builder.phi(vty) for _ in range(8)]
        i.add_incoming(ir.Constant(i64, 0), entry)
        for j, acc in enumerate(accs):
            acc.add_incoming(ir.Constant(vty, [float(j)] * 16), entry)
        new = [builder.call(fma, [acc, a, b]) for acc in accs]
        i1 = builder.add(i, ir.Constant(i64, 1))
        i.add_incoming(i1, loop)
        for acc, v in zip(accs, new):
            acc.add_incoming(v, loop)
        builder.cbranch(builder.icmp_signed("<", i1, count), loop, done)
        builder.position_at_end(done)
        total = new[0]
        for v in new[1:]:
            total = builder.fadd(total, v)
        return builder.extract_element(total, ir.Constant(ir.IntType(32), 0))

    return sig, codegen


@nb.njit(nogil=True)
def fma_peak(n):
    return _fma_chains(n)


def measured_peak_gmacs() -> float:
    """FP32 GMAC/s of one core on independent FMA chains (median of 5)."""
    n = 20_000_000
    fma_peak(10)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        fma_peak(n)
        ts.append(time.perf_counter() - t0)
    return n * 8 * 16 / float(np.median(ts)) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demosaick")
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import sys

    sys.path.insert(0, str(HERE))
    from speed import make_mosaic

    m = resolve_model(a.model, "demosaick")
    cfa = make_mosaic(Path(a.data), 4000, 6000).astype(np.float32) / np.float32(65535)
    h0, w0 = cfa.shape
    pad = packing_pad(m)
    from pafu_cli.cfa import packed_geometry

    _, _, hp, wp = packed_geometry(h0, w0, "RGGB", pad)
    h, w = hp // 2, wp // 2
    out = np.empty((h0, w0, 3), np.float32)
    nb.set_num_threads(1)
    times = []
    for stages in range(1, _band.STAGES + 1):
        engine.run_mosaic(m, cfa, "RGGB", pad, out=out, stages=stages)
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            engine.run_mosaic(m, cfa, "RGGB", pad, out=out, stages=stages)
            ts.append(time.perf_counter() - t0)
        times.append(float(np.median(ts)))
    quads = h * w
    hidden = sum(int(np.prod(wt.shape)) for wt in m.selector_weights[:-1])
    last = int(np.prod(m.selector_weights[-1].shape))
    n, co, ci, k, _ = m.bank.shape
    names = [
        "input band fill",
        "hidden selector layers",
        "last layer + argmax",
        "bank input band",
        "kernel apply (sorted, 4 x 16 SIMD)",
    ]
    macs = [0, hidden, last, 0, m.mix * co * ci * k * k]
    peak = measured_peak_gmacs()
    print(f"measured FP32 peak: {peak:.1f} GMAC/s per core ({peak / 16:.2f} G 16-lane FMAs/s)")
    kernels = "explicit SIMD" if _simd.simd_enabled() else "portable"
    print(
        f"model {m.name}: {h0}x{w0} mosaic = {quads / 1e6:.2f} M quads, 1 thread, {kernels} kernels, "
        f"median of {a.repeats}"
    )
    print("| stage | seconds | MACs per quad | GMAC/s | of FP32 peak |")
    print("|---|---|---|---|---|")
    prev = 0.0
    for name, t, mac in zip(names, times, macs):
        dt = t - prev
        prev = t
        rate = mac * quads / dt / 1e9 if mac else 0.0
        print(
            f"| {name} | {dt:.3f} | {mac or ''} | {rate:.1f} | {100 * rate / peak:.0f}% |"
            if mac
            else f"| {name} | {dt:.3f} | | | |"
        )
    print(f"| total | {times[-1]:.3f} | | | |")


if __name__ == "__main__":
    main()

"""Where the banded engine's time goes: one thread, a 24 MP mosaic, per stage.

Runs the steps of :func:`pafu_cli._band.run_bands` band by band (no threads) and
stops after stage k (0: input fill, 1: hidden selector layers, 2: last layer +
argmax, 3: the bank's input band, 4: the kernel apply); a stage's time is the
difference to the run that stops before it (median of ``--repeats``). Also
prints each stage's multiply-accumulates per second against the core's FP32
peak, measured on independent 16-lane FMA chains with no memory traffic (the
nominal 2.6 GHz x 16 lanes understates it: the core boosts).

Usage::

    NUMBA_NUM_THREADS=1 python benchmarks/profile_engine.py [--model demosaick] [--repeats 3]
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

from pafu_cli.cfa import packed_geometry
from pafu_cli.filters.pafu import _band, engine
from pafu_cli.filters.pafu._simd import I64, VEC, fma16
from pafu_cli.filters.pafu.model import receptive_margin
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


@nb.njit(nogil=True)
def run_upto(
    cfa,
    ctop,
    cleft,
    h,
    w,
    mean,
    scale,
    wf,
    bf,
    meta,
    bank,
    big_k,
    table,
    top,
    left,
    band,
    out,
    idx,
    mix,
    idx2,
    wt,
    stop,
):
    n_layers = meta.shape[0]
    marg = np.zeros(n_layers + 1, dtype=np.int64)
    for l in range(n_layers - 2, -2, -1):
        marg[l + 1] = marg[l + 2] + (meta[l + 1, 2] - 1) // 2
    pad = 1
    cmax = 4
    for l in range(n_layers):
        pad = max(pad, (meta[l, 2] - 1) // 2)
        cmax = max(cmax, meta[l, 0])
    big_r = (big_k - 1) // 2
    for bi in range((h + band - 1) // band):
        y0 = bi * band
        y1 = min(h, y0 + band)
        rows = y1 - y0 + 2 * marg[0]
        buf_a = np.empty((cmax, rows, w + 2 * pad), dtype=np.float32)
        buf_b = np.empty((cmax, rows, w + 2 * pad), dtype=np.float32)
        acc = np.empty(_band.TILE, dtype=np.float32)
        best = np.empty(_band.TILE, dtype=np.float32)
        _band._fill_bayer(cfa, ctop, cleft, h, w, y0 - marg[0], rows, pad, mean, scale, True, buf_a)
        if stop < 1:
            continue
        src, dst = buf_a, buf_b
        src_v0 = y0 - marg[0]
        for l in range(n_layers - 1):
            m = marg[l + 1]
            dst_v0 = y0 - m
            _band._conv_layer(
                src, src_v0, dst, dst_v0, max(0, y0 - m), min(h, y1 + m), w, pad, wf, bf, meta, l, acc
            )
            _band._reflect_pads(dst, meta[l, 0], dst_v0, y1 - y0 + 2 * m, h, w, pad)
            src, dst = dst, src
            src_v0 = dst_v0
        if stop < 2:
            continue
        _band._argmax_layer(
            src, src_v0, y0, y1, w, pad, wf, bf, meta, n_layers - 1, acc, best, mix, idx, idx2, wt
        )
        if stop < 3:
            continue
        raw = np.empty((4, y1 - y0 + 2 * big_r, w + 2 * big_r), dtype=np.float32)
        _band._fill_bayer(
            cfa, ctop, cleft, h, w, y0 - big_r, y1 - y0 + 2 * big_r, big_r, mean, scale, False, raw
        )
        if stop < 4:
            continue
        _band._apply_rows(
            raw, y0 - big_r, big_r, y0, y1, w, idx, mix, idx2, wt, bank, table, 2, top, left, out
        )


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
    top, left, hp, wp = packed_geometry(h0, w0, "RGGB", 2 * receptive_margin(m))
    h, w = hp // 2, wp // 2
    wf, bf, meta = engine._packed_layers(m)
    bank, table = engine._apply_layout(m)
    out = np.empty((h0, w0, 3), np.float32)
    idx, idx2, wt = engine._choice_arrays(m, h, w)
    mean = m.selector_input_mean.astype(np.float32)
    scale = m.selector_input_scale.astype(np.float32)
    args = (
        cfa,
        top,
        left,
        h,
        w,
        mean,
        scale,
        wf,
        bf,
        meta,
        bank,
        m.bank.shape[3],
        table,
        top,
        left,
        engine.BAND_ROWS,
        out,
        idx,
        m.mix,
        idx2,
        wt,
    )
    times = []
    for stop in range(5):
        run_upto(*args, stop)
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            run_upto(*args, stop)
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
    print(f"model {m.name}: {h0}x{w0} mosaic = {quads / 1e6:.2f} M quads, 1 thread, median of {a.repeats}")
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

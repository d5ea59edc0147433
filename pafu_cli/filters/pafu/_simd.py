"""Explicit 16-lane SIMD for the kernel apply, written as LLVM IR.

Numba leaves vectorisation to LLVM's loop vectoriser, which vectorises over the
innermost loop. For the per-pixel kernel apply the profitable direction is
across *output channels* with the pixel's tap broadcast (METHOD.md, "The
inference engine"), and four pixels that use the same kernel share every
weight load. LLVM's SLP vectoriser, which could find that form, is off in
Numba and, when switched on, turns the four pixels' tap loads into slow gathers.
So the inner loop is emitted here directly as IR with ``<16 x float>`` values:
per tap, one load of 16 weights, four scalar loads broadcast to 16 lanes, four
fused multiply-adds. The generated code is inlined into the calling Numba
function, so it is cached with it.

``dot4x16`` is tested against a plain NumPy sum in ``tests/test_band.py``.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.extending import intrinsic

LANES = 16


I32 = ir.IntType(32)


I64 = ir.IntType(64)


VEC = ir.VectorType(ir.FloatType(), LANES)


IVEC = ir.VectorType(I32, LANES)


def fma16(builder):
    """``llvm.fma.v16f32`` (a * b + c, one rounding), declared in the builder's module."""
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(VEC, [VEC] * 3), f"llvm.fma.v{LANES}f32"
    )


def splat(builder, x, vty=VEC):
    """The scalar ``x`` in every lane of a ``vty`` vector."""
    undef = ir.Constant(vty, ir.Undefined)
    return builder.shuffle_vector(
        builder.insert_element(undef, x, ir.Constant(I32, 0)), undef, ir.Constant(IVEC, [0] * LANES)
    )


def _element(builder, base, index):
    return builder.gep(base, [index], inbounds=True)


def _load(builder, base, index):
    """Scalar ``base[index]``."""
    return builder.load(_element(builder, base, index))


def _load_vec(builder, base, index):
    """16 consecutive floats from ``base[index]`` (unaligned)."""
    return builder.load(builder.bitcast(_element(builder, base, index), VEC.as_pointer()), align=4)


def _store_vec(builder, v, base, index):
    builder.store(v, builder.bitcast(_element(builder, base, index), v.type.as_pointer()), align=4)


class _Args:
    """An intrinsic's arguments as IR values: data pointers of arrays, int64 of integers."""

    def __init__(self, context, builder, signature, args):
        self.context, self.builder, self.tys, self.args = context, builder, signature.args, args

    def data(self, i):
        return self.context.make_array(self.tys[i])(self.context, self.builder, self.args[i]).data

    def i64(self, i):
        return self.context.cast(self.builder, self.args[i], self.tys[i], types.int64)

    def i64_tuple(self, i):
        ty = self.tys[i]
        return [
            self.context.cast(
                self.builder, self.builder.extract_value(self.args[i], j), ty.dtype, types.int64
            )
            for j in range(ty.count)
        ]


@intrinsic
def _dot4x16(typingctx, raw, off, n_taps, q0, q1, q2, q3, wf, wb, wstride, res, s0, s1, s2, s3):
    """``res[s_p : s_p + 16] = sum_t raw[q_p + off[t]] * wf[wb + t * wstride : ... + 16]``
    for the four pixels p (all flat offsets, ``n_taps >= 1``, no bounds checks)."""
    ints = (n_taps, q0, q1, q2, q3, wb, wstride, s0, s1, s2, s3)
    if not all(isinstance(a, types.Integer) for a in ints):
        return None
    sig = types.void(raw, off, n_taps, q0, q1, q2, q3, wf, wb, wstride, res, s0, s1, s2, s3)

    def codegen(context, builder, signature, args):
        a = _Args(context, builder, signature, args)
        raw_p, off_p, wf_p, res_p = a.data(0), a.data(1), a.data(7), a.data(10)
        n, wb, ws = a.i64(2), a.i64(8), a.i64(9)
        qs = [a.i64(i) for i in range(3, 7)]
        ss = [a.i64(i) for i in range(11, 15)]
        fma = fma16(builder)

        entry = builder.basic_block
        loop = builder.append_basic_block("dot4x16.loop")
        done = builder.append_basic_block("dot4x16.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        t = builder.phi(I64)
        accs = [builder.phi(VEC) for _ in range(4)]
        t.add_incoming(ir.Constant(I64, 0), entry)
        for acc in accs:
            acc.add_incoming(ir.Constant(VEC, [0.0] * LANES), entry)
        o = _load(builder, off_p, t)
        wv = _load_vec(builder, wf_p, builder.add(wb, builder.mul(t, ws)))
        new = [
            builder.call(fma, [splat(builder, _load(builder, raw_p, builder.add(q, o))), wv, acc])
            for q, acc in zip(qs, accs)
        ]
        t1 = builder.add(t, ir.Constant(I64, 1))
        t.add_incoming(t1, loop)
        for acc, v in zip(accs, new):
            acc.add_incoming(v, loop)
        builder.cbranch(builder.icmp_signed("<", t1, n), loop, done)
        builder.position_at_end(done)
        for s, v in zip(ss, new):
            _store_vec(builder, v, res_p, s)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(nogil=True, cache=True, inline="always")
def dot4x16(raw, off, n_taps, q0, q1, q2, q3, wf, wb, wstride, res, s0, s1, s2, s3):
    """See :func:`_dot4x16` (flat 1-D float32 ``raw``, ``wf``, ``res``; int64 ``off``)."""
    _dot4x16(raw, off, n_taps, q0, q1, q2, q3, wf, wb, wstride, res, s0, s1, s2, s3)


@nb.njit(nogil=True, cache=True)
def dot4x16_array(raw, off, q, wf, wb, wstride, res, s):
    """Array form of :func:`dot4x16` for tests (``q``, ``s``: 4 offsets each)."""
    dot4x16(raw, off, off.shape[0], q[0], q[1], q[2], q[3], wf, wb, wstride, res, s[0], s[1], s[2], s[3])


def dot4x16_reference(raw, off, q, wf, wb, wstride, res, s):
    """Plain NumPy :func:`dot4x16_array`."""
    taps = np.arange(off.shape[0])
    w = wf[wb + taps[:, None] * wstride + np.arange(LANES)[None, :]]  # (T, 16)
    for p in range(4):
        x = raw[q[p] + off].astype(np.float64)
        res[s[p] : s[p] + LANES] = (x[:, None] * w).sum(axis=0)


def _make_conv(k: int, n_out: int):
    """Intrinsic: ``n_out`` output channels of a k x k convolution on 16 pixels.

    ``conv(src, s_base, c_stride, r_stride, ci, wf, w_0..w_{n-1}, bias, b_0..,
    relu, dst, d_0..)``: for output o, ``acc = bias[b_o] + sum_{c, dy, dx}
    wf[w_o + (c k + dy) k + dx] * src[s_base + c c_stride + dy r_stride + dx + lane]``,
    then ``max(acc, 0)`` if ``relu``, stored to ``dst[d_o + lane]`` (lanes 0..15).
    The k x k taps are unrolled; the loop runs over input channels; each source
    vector load serves all ``n_out`` outputs."""

    @intrinsic
    def conv(typingctx, src, s_base, c_stride, r_stride, ci, wf, ws, bias, bs, relu, dst, ds):
        if not (
            isinstance(ws, types.UniTuple)
            and ws.count == n_out
            and isinstance(bs, types.UniTuple)
            and bs.count == n_out
            and isinstance(ds, types.UniTuple)
            and ds.count == n_out
        ):
            return None
        sig = types.void(src, s_base, c_stride, r_stride, ci, wf, ws, bias, bs, relu, dst, ds)

        def codegen(context, builder, signature, args):
            a = _Args(context, builder, signature, args)
            src_p, wf_p, bias_p, dst_p = a.data(0), a.data(5), a.data(7), a.data(10)
            s_base, c_stride, r_stride, ci = a.i64(1), a.i64(2), a.i64(3), a.i64(4)
            w_offs, b_offs, d_offs = a.i64_tuple(6), a.i64_tuple(8), a.i64_tuple(11)
            relu = context.cast(builder, args[9], signature.args[9], types.boolean)
            fma = fma16(builder)
            inits = [splat(builder, _load(builder, bias_p, b)) for b in b_offs]
            entry = builder.basic_block
            loop = builder.append_basic_block("conv.loop")
            done = builder.append_basic_block("conv.done")
            zero_i = ir.Constant(I64, 0)
            builder.cbranch(builder.icmp_signed(">", ci, zero_i), loop, done)
            builder.position_at_end(loop)
            c = builder.phi(I64)
            accs = [builder.phi(VEC) for _ in range(n_out)]
            c.add_incoming(zero_i, entry)
            for a, v in zip(accs, inits):
                a.add_incoming(v, entry)
            base = builder.add(s_base, builder.mul(c, c_stride))
            wrow = builder.mul(c, ir.Constant(I64, k * k))
            cur = list(accs)
            for dy in range(k):
                for dx in range(k):
                    x = _load_vec(
                        builder,
                        src_p,
                        builder.add(
                            base,
                            builder.add(builder.mul(r_stride, ir.Constant(I64, dy)), ir.Constant(I64, dx)),
                        ),
                    )
                    tap = builder.add(wrow, ir.Constant(I64, dy * k + dx))
                    for o in range(n_out):
                        wv = _load(builder, wf_p, builder.add(w_offs[o], tap))
                        cur[o] = builder.call(fma, [splat(builder, wv), x, cur[o]])
            c1 = builder.add(c, ir.Constant(I64, 1))
            c.add_incoming(c1, builder.basic_block)
            for a, v in zip(accs, cur):
                a.add_incoming(v, builder.basic_block)
            loop_end = builder.basic_block
            builder.cbranch(builder.icmp_signed("<", c1, ci), loop, done)
            builder.position_at_end(done)
            zero_v = ir.Constant(VEC, [0.0] * LANES)
            phis = [builder.phi(VEC) for _ in range(n_out)]
            for o, phi in enumerate(phis):
                phi.add_incoming(inits[o], entry)
                phi.add_incoming(cur[o], loop_end)
            for o, phi in enumerate(phis):
                v = builder.select(
                    relu, builder.select(builder.fcmp_ordered(">", phi, zero_v), phi, zero_v), phi
                )
                _store_vec(builder, v, dst_p, d_offs[o])
            return context.get_dummy_value()

        return sig, codegen

    return conv


CONV_OUT = 4  # output channels per call


conv3_4x16 = _make_conv(3, CONV_OUT)


conv1_4x16 = _make_conv(1, CONV_OUT)


def _make_conv1_select(top2: bool):
    """Intrinsic: the last selector layer (1x1) fused with the per-pixel choice,
    for 16 pixels in registers; logits ``l_o = bias[boff + o] + sum_c wf[woff +
    o ci + c] * src[s_base + c c_stride + lane]`` (``ci, co >= 1``).

    ``conv(src, s_base, c_stride, ci, wf, woff, co, bias, boff, idx, idx2, wt,
    i_base)`` stores ``idx[i_base + lane] = argmax_o l_o`` (the first maximum
    winning); with ``top2`` also ``idx2[...]``, the argmax of the other logits
    (the first of equal ones; ``co >= 2``), and ``wt[...] = 1 / (1 + exp(l_idx2 -
    l_idx))``, the softmax weight of the first of the two (else ``idx2`` and
    ``wt`` are untouched)."""

    @intrinsic
    def conv(typingctx, src, s_base, c_stride, ci, wf, woff, co, bias, boff, idx, idx2, wt, i_base):
        sig = types.void(src, s_base, c_stride, ci, wf, woff, co, bias, boff, idx, idx2, wt, i_base)

        def codegen(context, builder, signature, args):
            a = _Args(context, builder, signature, args)
            src_p, wf_p, bias_p, idx_p = a.data(0), a.data(4), a.data(7), a.data(9)
            s_base, c_stride, ci, woff, co, boff, i_base = (a.i64(i) for i in (1, 2, 3, 5, 6, 8, 12))
            fma = fma16(builder)
            minus_inf = ir.Constant(VEC, [float("-inf")] * LANES)

            entry = builder.basic_block
            oloop = builder.append_basic_block("select.o")
            cloop = builder.append_basic_block("select.c")
            oend = builder.append_basic_block("select.oend")
            done = builder.append_basic_block("select.done")
            builder.branch(oloop)

            builder.position_at_end(oloop)
            o = builder.phi(I64)
            # best logit and index, second best logit and index
            state = [builder.phi(VEC), builder.phi(IVEC), builder.phi(VEC), builder.phi(IVEC)]
            o.add_incoming(ir.Constant(I64, 0), entry)
            for phi, init in zip(state, (minus_inf, ir.Constant(IVEC, [0] * LANES)) * 2):
                phi.add_incoming(init, entry)
            init = splat(builder, _load(builder, bias_p, builder.add(boff, o)))
            wrow = builder.add(woff, builder.mul(o, ci))
            builder.branch(cloop)

            builder.position_at_end(cloop)
            c = builder.phi(I64)
            acc = builder.phi(VEC)
            c.add_incoming(ir.Constant(I64, 0), oloop)
            acc.add_incoming(init, oloop)
            x = _load_vec(builder, src_p, builder.add(s_base, builder.mul(c, c_stride)))
            wv = _load(builder, wf_p, builder.add(wrow, c))
            acc1 = builder.call(fma, [splat(builder, wv), x, acc])
            c1 = builder.add(c, ir.Constant(I64, 1))
            c.add_incoming(c1, cloop)
            acc.add_incoming(acc1, cloop)
            builder.cbranch(builder.icmp_signed("<", c1, ci), cloop, oend)

            builder.position_at_end(oend)
            best, bidx, second, sidx = state
            ov = splat(builder, builder.trunc(o, I32), IVEC)
            better = builder.fcmp_ordered(">", acc1, best)
            new = [builder.select(better, acc1, best), builder.select(better, ov, bidx)]
            if top2:  # the old best moves down, or the logit beats only the second
                above = builder.fcmp_ordered(">", acc1, second)
                new += [
                    builder.select(better, best, builder.select(above, acc1, second)),
                    builder.select(better, bidx, builder.select(above, ov, sidx)),
                ]
            else:
                new += [second, sidx]
            o1 = builder.add(o, ir.Constant(I64, 1))
            o.add_incoming(o1, oend)
            for phi, v in zip(state, new):
                phi.add_incoming(v, oend)
            builder.cbranch(builder.icmp_signed("<", o1, co), oloop, done)

            builder.position_at_end(done)
            _store_vec(builder, new[1], idx_p, i_base)
            if top2:
                exp = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(VEC, [VEC]), f"llvm.exp.v{LANES}f32"
                )
                one = ir.Constant(VEC, [1.0] * LANES)
                e = builder.call(exp, [builder.fsub(new[2], new[0])])
                _store_vec(builder, new[3], a.data(10), i_base)
                _store_vec(builder, builder.fdiv(one, builder.fadd(one, e)), a.data(11), i_base)
            return context.get_dummy_value()

        return sig, codegen

    return conv


conv1_argmax_16 = _make_conv1_select(False)


conv1_top2_16 = _make_conv1_select(True)

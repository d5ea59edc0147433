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

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.extending import intrinsic

LANES = 16


@intrinsic
def _dot4x16(typingctx, raw, off, n_taps, q0, q1, q2, q3, wf, wb, wstride, res, s0, s1, s2, s3):
    """``res[s_p : s_p + 16] = sum_t raw[q_p + off[t]] * wf[wb + t * wstride : ... + 16]``
    for the four pixels p (all flat offsets, ``n_taps >= 1``, no bounds checks)."""
    ints = (n_taps, q0, q1, q2, q3, wb, wstride, s0, s1, s2, s3)
    if not all(isinstance(a, types.Integer) for a in ints):
        return None
    sig = types.void(raw, off, n_taps, q0, q1, q2, q3, wf, wb, wstride, res, s0, s1, s2, s3)

    def codegen(context, builder, signature, args):
        (raw_a, off_a, n, q0v, q1v, q2v, q3v, wf_a, wbv, wsv, res_a, *sv) = args
        tys = signature.args
        i64 = ir.IntType(64)
        f32 = ir.FloatType()
        vty = ir.VectorType(f32, LANES)

        def data(ty, val):
            return context.make_array(ty)(context, builder, val).data

        def as_i64(val, ty):
            return context.cast(builder, val, ty, types.int64)

        raw_p = data(tys[0], raw_a)
        off_p = data(tys[1], off_a)
        wf_p = data(tys[7], wf_a)
        res_p = data(tys[10], res_a)
        n = as_i64(n, tys[2])
        qs = [as_i64(v, tys[3 + i]) for i, v in enumerate((q0v, q1v, q2v, q3v))]
        wb = as_i64(wbv, tys[8])
        ws = as_i64(wsv, tys[9])
        ss = [as_i64(v, tys[11 + i]) for i, v in enumerate(sv)]

        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                             f"llvm.fma.v{LANES}f32")
        undef = ir.Constant(vty, ir.Undefined)
        splat0 = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        zero = ir.Constant(vty, [0.0] * LANES)

        entry = builder.basic_block
        loop = builder.append_basic_block("dot4x16.loop")
        done = builder.append_basic_block("dot4x16.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        t = builder.phi(i64)
        accs = [builder.phi(vty) for _ in range(4)]
        t.add_incoming(ir.Constant(i64, 0), entry)
        for a in accs:
            a.add_incoming(zero, entry)
        o = builder.load(builder.gep(off_p, [t], inbounds=True))
        wptr = builder.gep(wf_p, [builder.add(wb, builder.mul(t, ws))], inbounds=True)
        wv = builder.load(builder.bitcast(wptr, vty.as_pointer()), align=4)
        new = []
        for q, a in zip(qs, accs):
            x = builder.load(builder.gep(raw_p, [builder.add(q, o)], inbounds=True))
            xv = builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(ir.IntType(32), 0)),
                                        undef, splat0)
            new.append(builder.call(fma, [xv, wv, a]))
        t1 = builder.add(t, ir.Constant(i64, 1))
        t.add_incoming(t1, loop)
        for a, v in zip(accs, new):
            a.add_incoming(v, loop)
        builder.cbranch(builder.icmp_signed("<", t1, n), loop, done)
        builder.position_at_end(done)
        for s, v in zip(ss, new):
            ptr = builder.gep(res_p, [s], inbounds=True)
            builder.store(v, builder.bitcast(ptr, vty.as_pointer()), align=4)
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
        res[s[p]: s[p] + LANES] = (x[:, None] * w).sum(axis=0)


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
        if not (isinstance(ws, types.UniTuple) and ws.count == n_out and isinstance(bs, types.UniTuple)
                and bs.count == n_out and isinstance(ds, types.UniTuple) and ds.count == n_out):
            return None
        sig = types.void(src, s_base, c_stride, r_stride, ci, wf, ws, bias, bs, relu, dst, ds)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            f32 = ir.FloatType()
            vty = ir.VectorType(f32, LANES)

            def data(i):
                return context.make_array(tys[i])(context, builder, args[i]).data

            def as_i64(i):
                return context.cast(builder, args[i], tys[i], types.int64)

            def tuple_i64(i):
                return [context.cast(builder, builder.extract_value(args[i], j), tys[i].dtype, types.int64)
                        for j in range(n_out)]

            src_p, wf_p, bias_p, dst_p = data(0), data(5), data(7), data(10)
            s_base, c_stride, r_stride, ci = as_i64(1), as_i64(2), as_i64(3), as_i64(4)
            w_offs, b_offs, d_offs = tuple_i64(6), tuple_i64(8), tuple_i64(11)
            relu = context.cast(builder, args[9], tys[9], types.boolean)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                                 f"llvm.fma.v{LANES}f32")
            undef = ir.Constant(vty, ir.Undefined)
            splat0 = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

            def splat(x):
                return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(ir.IntType(32), 0)),
                                              undef, splat0)

            def load_vec(index):
                ptr = builder.gep(src_p, [index], inbounds=True)
                return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4)

            inits = [splat(builder.load(builder.gep(bias_p, [b], inbounds=True))) for b in b_offs]
            entry = builder.basic_block
            loop = builder.append_basic_block("conv.loop")
            done = builder.append_basic_block("conv.done")
            zero_i = ir.Constant(i64, 0)
            builder.cbranch(builder.icmp_signed(">", ci, zero_i), loop, done)
            builder.position_at_end(loop)
            c = builder.phi(i64)
            accs = [builder.phi(vty) for _ in range(n_out)]
            c.add_incoming(zero_i, entry)
            for a, v in zip(accs, inits):
                a.add_incoming(v, entry)
            base = builder.add(s_base, builder.mul(c, c_stride))
            wrow = builder.mul(c, ir.Constant(i64, k * k))
            cur = list(accs)
            for dy in range(k):
                for dx in range(k):
                    x = load_vec(builder.add(base, builder.add(builder.mul(r_stride, ir.Constant(i64, dy)),
                                                               ir.Constant(i64, dx))))
                    tap = builder.add(wrow, ir.Constant(i64, dy * k + dx))
                    for o in range(n_out):
                        wv = builder.load(builder.gep(wf_p, [builder.add(w_offs[o], tap)], inbounds=True))
                        cur[o] = builder.call(fma, [splat(wv), x, cur[o]])
            c1 = builder.add(c, ir.Constant(i64, 1))
            c.add_incoming(c1, builder.basic_block)
            for a, v in zip(accs, cur):
                a.add_incoming(v, builder.basic_block)
            loop_end = builder.basic_block
            builder.cbranch(builder.icmp_signed("<", c1, ci), loop, done)
            builder.position_at_end(done)
            zero_v = ir.Constant(vty, [0.0] * LANES)
            phis = [builder.phi(vty) for _ in range(n_out)]
            for o, phi in enumerate(phis):
                phi.add_incoming(inits[o], entry)
                phi.add_incoming(cur[o], loop_end)
            for o, phi in enumerate(phis):
                v = builder.select(relu, builder.select(builder.fcmp_ordered(">", phi, zero_v), phi, zero_v), phi)
                ptr = builder.gep(dst_p, [d_offs[o]], inbounds=True)
                builder.store(v, builder.bitcast(ptr, vty.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return conv


CONV_OUT = 4  # output channels per call
conv3_4x16 = _make_conv(3, CONV_OUT)
conv1_4x16 = _make_conv(1, CONV_OUT)


@intrinsic
def conv1_argmax_16(typingctx, src, s_base, c_stride, ci, wf, woff, co, bias, boff, idx, i_base):
    """Last selector layer (1x1) fused with the argmax, for 16 pixels in registers:
    ``idx[i_base + lane] = argmax_o (bias[boff + o] + sum_c wf[woff + o ci + c]
    * src[s_base + c c_stride + lane])``, the first maximum winning (``ci, co >= 1``)."""
    sig = types.void(src, s_base, c_stride, ci, wf, woff, co, bias, boff, idx, i_base)

    def codegen(context, builder, signature, args):
        tys = signature.args
        i32 = ir.IntType(32)
        i64 = ir.IntType(64)
        f32 = ir.FloatType()
        vty = ir.VectorType(f32, LANES)
        ity = ir.VectorType(i32, LANES)

        def data(i):
            return context.make_array(tys[i])(context, builder, args[i]).data

        def as_i64(i):
            return context.cast(builder, args[i], tys[i], types.int64)

        src_p, wf_p, bias_p, idx_p = data(0), data(4), data(7), data(9)
        s_base, c_stride, ci, woff, co, boff, i_base = (as_i64(i) for i in (1, 2, 3, 5, 6, 8, 10))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                             f"llvm.fma.v{LANES}f32")
        undef_f = ir.Constant(vty, ir.Undefined)
        undef_i = ir.Constant(ity, ir.Undefined)
        splat0 = ir.Constant(ity, [0] * LANES)

        def splat(x, undef):
            return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, splat0)

        entry = builder.basic_block
        oloop = builder.append_basic_block("argmax.o")
        cloop = builder.append_basic_block("argmax.c")
        oend = builder.append_basic_block("argmax.oend")
        done = builder.append_basic_block("argmax.done")
        builder.branch(oloop)

        builder.position_at_end(oloop)
        o = builder.phi(i64)
        best = builder.phi(vty)
        bidx = builder.phi(ity)
        o.add_incoming(ir.Constant(i64, 0), entry)
        best.add_incoming(ir.Constant(vty, [float("-inf")] * LANES), entry)
        bidx.add_incoming(ir.Constant(ity, [0] * LANES), entry)
        init = splat(builder.load(builder.gep(bias_p, [builder.add(boff, o)], inbounds=True)), undef_f)
        wrow = builder.add(woff, builder.mul(o, ci))
        builder.branch(cloop)

        builder.position_at_end(cloop)
        c = builder.phi(i64)
        acc = builder.phi(vty)
        c.add_incoming(ir.Constant(i64, 0), oloop)
        acc.add_incoming(init, oloop)
        xptr = builder.gep(src_p, [builder.add(s_base, builder.mul(c, c_stride))], inbounds=True)
        x = builder.load(builder.bitcast(xptr, vty.as_pointer()), align=4)
        wv = builder.load(builder.gep(wf_p, [builder.add(wrow, c)], inbounds=True))
        acc1 = builder.call(fma, [splat(wv, undef_f), x, acc])
        c1 = builder.add(c, ir.Constant(i64, 1))
        c.add_incoming(c1, cloop)
        acc.add_incoming(acc1, cloop)
        builder.cbranch(builder.icmp_signed("<", c1, ci), cloop, oend)

        builder.position_at_end(oend)
        better = builder.fcmp_ordered(">", acc1, best)
        best1 = builder.select(better, acc1, best)
        bidx1 = builder.select(better, splat(builder.trunc(o, i32), undef_i), bidx)
        o1 = builder.add(o, ir.Constant(i64, 1))
        o.add_incoming(o1, oend)
        best.add_incoming(best1, oend)
        bidx.add_incoming(bidx1, oend)
        builder.cbranch(builder.icmp_signed("<", o1, co), oloop, done)

        builder.position_at_end(done)
        ptr = builder.gep(idx_p, [i_base], inbounds=True)
        builder.store(bidx1, builder.bitcast(ptr, ity.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen

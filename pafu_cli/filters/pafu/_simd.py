"""16-lane kernels of the banded engine (:mod:`pafu_cli.filters.pafu._band`), in two
implementations that give the same bits: explicit SIMD written as LLVM IR, and
portable Numba loops.

Why the IR: Numba leaves vectorisation to LLVM's loop vectoriser, which
vectorises over the innermost loop. For the per-pixel kernel apply the
profitable direction is across *output channels* with the pixel's tap
broadcast (METHOD.md, "The inference engine"), and four pixels that use the
same kernel share every weight load. LLVM's SLP vectoriser, which could find
that form, is off in Numba and, when switched on, turns the four pixels' tap
loads into slow gathers. So the inner loops are emitted here directly as IR
with ``<16 x float>`` values (per tap: one load of 16 weights, four scalar
loads broadcast to 16 lanes, four fused multiply-adds). The generated code is
inlined into the calling Numba function, so it is cached with it.

The IR relies on Numba internals (``@intrinsic``, ``cgutils``, array
structs). Each kernel therefore also exists as plain Numba code that performs
the same float operations in the same order, every multiply-add fused into one
rounding as ``llvm.fma`` does (:func:`pafu_cli._numba.fmadd`: the hardware's FMA
through LLVM's contraction; as Python, an exact emulation), so the two agree
bit for bit; the self-check below and ``tests/test_engine_simd.py`` verify it.

Which one runs is the ``simd`` argument of every kernel here (:data:`SIMD_ON`
or :data:`SIMD_OFF`, types rather than values, so each choice is compiled
separately without a branch in the inner loops). :func:`simd_enabled` picks it
once per process: the IR unless

- the environment variable ``PAFU_SIMD`` is ``0`` (also ``off``, ``false``,
  ``no``; read once, at import): forces the portable kernels, e.g. to rule the
  IR out when chasing a problem;
- ``NUMBA_DISABLE_JIT=1``: intrinsics cannot run as Python, the portable kernels
  can (slowly; for stepping through the engine or measuring coverage);
- the IR cannot be built or compiled with this Numba: a warning says so, and
  the engine goes on with the portable kernels (same results, slower).

:func:`self_check` compares the two on random data (the portable kernels rely
on LLVM contracting multiply-adds into the hardware's FMA, which a CPU without
FMA lacks); the tests run it, the engine does not (loading its compiled code
cost 0.14-0.18 s per process).

The kernels work on flat 1-D float32 arrays at flat offsets, without bounds
checks: callers guarantee every index is in range.
"""

from __future__ import annotations

import os
import warnings

import numba as nb
import numpy as np
from numba.extending import overload

from pafu_cli._numba import JIT_DISABLED, NJIT, NJIT_CONTRACT, fmadd

LANES = 16  # pixels (or output channels) per vector


CONV_OUT = 4  # output channels per call of the convolution kernels


FORCED_OFF = os.environ.get("PAFU_SIMD", "").strip().lower() in ("0", "off", "false", "no")


# The ``simd`` argument of the kernels below: the IR (``SIMD_ON``) or the portable
# code (``SIMD_OFF``). Not a bool but a different Numba type each (a tuple of
# length 1 or 0), so that Numba compiles (and caches) the engine once per choice
# and LLVM folds the other branch away: a run-time branch in the inner loops
# cost about 5% of the engine's time.
SIMD_ON = (True,)


SIMD_OFF = ()


# --- the per-pixel choice: the one definition ------------------------------------


@nb.njit(inline="always", **NJIT)
def choice_update(state, logit, o, top2):
    """The running choice of one pixel after logit ``o``.

    ``state = (best, best_index, second, second_index)``, started at ``(-inf, 0,
    -inf, 0)`` and fed logits ``o = 0, 1, ...`` in order. A logit strictly above
    ``best`` takes its place (the first maximum wins) and, with ``top2``, the old
    best becomes the second; with ``top2`` a logit strictly above only
    ``second`` becomes the second. So ``best_index`` is the argmax and
    ``second_index`` the argmax of the other logits (first of equal ones), as
    ``numpy.argsort(-logits, kind="stable")[:2]`` for logits without NaN.
    """
    best, bidx, second, sidx = state
    if logit > best:
        if top2:
            return logit, o, best, bidx
        return logit, o, second, sidx
    if top2 and logit > second:
        return best, bidx, logit, o
    return best, bidx, second, sidx


@nb.njit(inline="always", **NJIT)
def top2_weight(best, second):
    """Softmax weight of the larger of two logits: ``1 / (1 + exp(second - best))``
    (float32: subtract, exp, add, divide, each rounded once)."""
    return np.float32(1.0) / (np.float32(1.0) + np.exp(np.float32(second - best)))


@nb.njit(inline="always", **NJIT)
def choice_start():
    """The state of :func:`choice_update` before the first logit."""
    return np.float32(-np.inf), 0, np.float32(-np.inf), 0


# --- portable kernels ----------------------------------------------------------
#
# Lanes innermost, so that LLVM vectorises them; every multiply-add is
# ``fmadd`` (one rounding, as llvm.fma) in the IR's order.


@nb.njit(inline="always", **NJIT)
def _stored_later(offsets, i):
    """Whether an entry after ``i`` of ``offsets`` is ``offsets[i]`` (its store would win)."""
    for j in range(i + 1, len(offsets)):
        if offsets[j] == offsets[i]:
            return True
    return False


@nb.njit(**NJIT_CONTRACT)
def conv_4x16_portable(k, src, at, wf, ws, bf, bs, relu, dst, ds):
    """``CONV_OUT`` output channels of a k x k convolution on 16 pixels.

    ``at = (s_base, c_stride, r_stride, ci)``: the first tap of lane 0 is
    ``src[s_base]``, input channel c and tap row dy are ``c c_stride + dy
    r_stride`` further. For output o, lane i::

        acc = bias[bs[o]]
        for c, dy, dx (in that order):
            acc = fma(wf[ws[o] + (c k + dy) k + dx], src[s_base + c c_stride + dy r_stride + dx + i], acc)
        dst[ds[o] + i] = max(acc, 0) if relu else acc   (NaN -> 0 with relu)

    Destinations are equal (a repeated output: computed once) or disjoint; they
    serve as the accumulators.
    """
    s_base, c_stride, r_stride, ci = at
    for o in range(len(ds)):
        if _stored_later(ds, o):
            continue
        d = ds[o]
        b = bf[bs[o]]
        for i in range(LANES):
            dst[d + i] = b
        for c in range(ci):
            for dy in range(k):
                for dx in range(k):
                    wv = wf[ws[o] + (c * k + dy) * k + dx]
                    x0 = s_base + c * c_stride + dy * r_stride + dx
                    for i in range(LANES):
                        dst[d + i] = fmadd(wv, src[x0 + i], dst[d + i])
        if relu:
            for i in range(LANES):
                v = dst[d + i]
                dst[d + i] = v if v > 0 else np.float32(0.0)


@nb.njit(**NJIT_CONTRACT)
def conv3_4x16_portable(src, at, wf, ws, bf, bs, relu, dst, ds):
    """:func:`conv_4x16_portable` with 3 x 3 kernels."""
    conv_4x16_portable(3, src, at, wf, ws, bf, bs, relu, dst, ds)


@nb.njit(**NJIT_CONTRACT)
def conv1_4x16_portable(src, at, wf, ws, bf, bs, relu, dst, ds):
    """:func:`conv_4x16_portable` with 1 x 1 kernels."""
    conv_4x16_portable(1, src, at, wf, ws, bf, bs, relu, dst, ds)


@nb.njit(**NJIT_CONTRACT)
def conv1_choice_16_portable(top2, src, at, wf, bf, lay, choice, i_base):
    """The last selector layer (1 x 1) fused with the per-pixel choice, 16 pixels.

    ``at = (s_base, c_stride)``, ``lay = (ci, co, woff, boff)``, ``choice = (idx,
    idx2, wt)`` (flat). Logit o of lane i: ``acc = bias[boff + o]``, then for c
    in order ``acc = fma(wf[woff + o ci + c], src[s_base + c c_stride + i],
    acc)``; the logits go through :func:`choice_update` in order. Stores
    ``idx[i_base + i]``; with ``top2`` also ``idx2[...]`` and ``wt[...] =``
    :func:`top2_weight` (else those two are untouched). Needs ``ci, co >= 1``
    (``co >= 2`` with ``top2``).
    """
    s_base, c_stride = at
    ci, co, woff, boff = lay
    idx, idx2, wt = choice
    # Per lane: the logit being summed, the best and second logits, their kernels.
    val = np.empty((3, LANES), dtype=np.float32)
    ind = np.zeros((2, LANES), dtype=np.int64)
    for i in range(LANES):
        state = choice_start()
        val[1, i] = state[0]
        val[2, i] = state[2]
    for o in range(co):
        b = bf[boff + o]
        for i in range(LANES):
            val[0, i] = b
        for c in range(ci):
            wv = wf[woff + o * ci + c]
            x0 = s_base + c * c_stride
            for i in range(LANES):
                val[0, i] = fmadd(wv, src[x0 + i], val[0, i])
        for i in range(LANES):
            state = choice_update((val[1, i], ind[0, i], val[2, i], ind[1, i]), val[0, i], o, top2)
            val[1, i], ind[0, i], val[2, i], ind[1, i] = state
    for i in range(LANES):
        idx[i_base + i] = ind[0, i]
        if top2:
            idx2[i_base + i] = ind[1, i]
            wt[i_base + i] = top2_weight(val[1, i], val[2, i])


@nb.njit(**NJIT_CONTRACT)
def conv1_argmax_16_portable(src, at, wf, bf, lay, choice, i_base):
    """:func:`conv1_choice_16_portable`, argmax only."""
    conv1_choice_16_portable(False, src, at, wf, bf, lay, choice, i_base)


@nb.njit(**NJIT_CONTRACT)
def conv1_top2_16_portable(src, at, wf, bf, lay, choice, i_base):
    """:func:`conv1_choice_16_portable`, the top two and the weight."""
    conv1_choice_16_portable(True, src, at, wf, bf, lay, choice, i_base)


@nb.njit(**NJIT_CONTRACT)
def dot4x16_portable(raw, off, n_taps, qs, wf, wb, wstride, res, ss):
    """16 outputs of one kernel at four pixels p (flat offsets ``qs[p]``), lane i::

        acc = 0
        for t in 0 .. n_taps - 1 (in order):
            acc = fma(raw[qs[p] + off[t]], wf[wb + t wstride + i], acc)
        res[ss[p] + i] = acc

    ``n_taps >= 1``. Destinations are equal (a repeated pixel: the last one's
    result is kept) or disjoint; they serve as the accumulators.
    """
    for p in range(len(ss)):
        if _stored_later(ss, p):
            continue
        s, q = ss[p], qs[p]
        for i in range(LANES):
            res[s + i] = np.float32(0.0)
        for t in range(n_taps):
            x = raw[q + off[t]]
            w0 = wb + t * wstride
            for i in range(LANES):
                res[s + i] = fmadd(x, wf[w0 + i], res[s + i])


# --- explicit SIMD as LLVM IR ------------------------------------------------------

try:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

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

    def _int_tuple(ty, n):
        return isinstance(ty, types.UniTuple) and ty.count == n and isinstance(ty.dtype, types.Integer)

    class _Args:
        """An intrinsic's arguments as IR values: data pointers of arrays, int64 of integers."""

        def __init__(self, context, builder, signature, args):
            self.context, self.builder, self.tys, self.args = context, builder, signature.args, args

        def data(self, i, j=None):
            """Data pointer of array argument ``i`` (or of item ``j`` of tuple argument ``i``)."""
            ty, val = self.tys[i], self.args[i]
            if j is not None:
                ty, val = ty.types[j], self.builder.extract_value(val, j)
            return self.context.make_array(ty)(self.context, self.builder, val).data

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
    def _ir_dot4x16(typingctx, raw, off, n_taps, qs, wf, wb, wstride, res, ss):
        """IR form of :func:`dot4x16_portable` (same arguments)."""
        if not (
            all(isinstance(a, types.Integer) for a in (n_taps, wb, wstride))
            and _int_tuple(qs, 4)
            and _int_tuple(ss, 4)
        ):
            return None
        sig = types.void(raw, off, n_taps, qs, wf, wb, wstride, res, ss)

        def codegen(context, builder, signature, args):
            a = _Args(context, builder, signature, args)
            raw_p, off_p, wf_p, res_p = a.data(0), a.data(1), a.data(4), a.data(7)
            n, wb, ws = a.i64(2), a.i64(5), a.i64(6)
            qs, ss = a.i64_tuple(3), a.i64_tuple(8)
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

    def _make_ir_conv(k: int):
        """IR form of :func:`conv_4x16_portable` for k x k kernels (same arguments
        after ``k``). The k x k taps are unrolled; the loop runs over input
        channels; each source vector load serves all ``CONV_OUT`` outputs."""

        @intrinsic
        def conv(typingctx, src, at, wf, ws, bias, bs, relu, dst, ds):
            if not (
                _int_tuple(at, 4)
                and _int_tuple(ws, CONV_OUT)
                and _int_tuple(bs, CONV_OUT)
                and _int_tuple(ds, CONV_OUT)
            ):
                return None
            sig = types.void(src, at, wf, ws, bias, bs, relu, dst, ds)

            def codegen(context, builder, signature, args):
                a = _Args(context, builder, signature, args)
                src_p, wf_p, bias_p, dst_p = a.data(0), a.data(2), a.data(4), a.data(7)
                s_base, c_stride, r_stride, ci = a.i64_tuple(1)
                w_offs, b_offs, d_offs = a.i64_tuple(3), a.i64_tuple(5), a.i64_tuple(8)
                relu = context.cast(builder, args[6], signature.args[6], types.boolean)
                fma = fma16(builder)
                inits = [splat(builder, _load(builder, bias_p, b)) for b in b_offs]
                entry = builder.basic_block
                loop = builder.append_basic_block("conv.loop")
                done = builder.append_basic_block("conv.done")
                zero_i = ir.Constant(I64, 0)
                builder.cbranch(builder.icmp_signed(">", ci, zero_i), loop, done)
                builder.position_at_end(loop)
                c = builder.phi(I64)
                accs = [builder.phi(VEC) for _ in range(CONV_OUT)]
                c.add_incoming(zero_i, entry)
                for acc, v in zip(accs, inits):
                    acc.add_incoming(v, entry)
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
                                builder.add(
                                    builder.mul(r_stride, ir.Constant(I64, dy)), ir.Constant(I64, dx)
                                ),
                            ),
                        )
                        tap = builder.add(wrow, ir.Constant(I64, dy * k + dx))
                        for o in range(CONV_OUT):
                            wv = _load(builder, wf_p, builder.add(w_offs[o], tap))
                            cur[o] = builder.call(fma, [splat(builder, wv), x, cur[o]])
                c1 = builder.add(c, ir.Constant(I64, 1))
                c.add_incoming(c1, builder.basic_block)
                for acc, v in zip(accs, cur):
                    acc.add_incoming(v, builder.basic_block)
                loop_end = builder.basic_block
                builder.cbranch(builder.icmp_signed("<", c1, ci), loop, done)
                builder.position_at_end(done)
                zero_v = ir.Constant(VEC, [0.0] * LANES)
                phis = [builder.phi(VEC) for _ in range(CONV_OUT)]
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

    def _make_ir_conv1_choice(top2: bool):
        """IR form of :func:`conv1_choice_16_portable` (same arguments after
        ``top2``): the 16 lanes' logits, and :func:`choice_update` on vectors."""

        @intrinsic
        def conv(typingctx, src, at, wf, bias, lay, choice, i_base):
            if not (_int_tuple(at, 2) and _int_tuple(lay, 4) and isinstance(i_base, types.Integer)):
                return None
            sig = types.void(src, at, wf, bias, lay, choice, i_base)

            def codegen(context, builder, signature, args):
                a = _Args(context, builder, signature, args)
                src_p, wf_p, bias_p, idx_p = a.data(0), a.data(2), a.data(3), a.data(5, 0)
                s_base, c_stride = a.i64_tuple(1)
                ci, co, woff, boff = a.i64_tuple(4)
                i_base = a.i64(6)
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
                    _store_vec(builder, new[3], a.data(5, 1), i_base)
                    _store_vec(builder, builder.fdiv(one, builder.fadd(one, e)), a.data(5, 2), i_base)
                return context.get_dummy_value()

            return sig, codegen

        return conv

    _ir_conv3_4x16 = _make_ir_conv(3)
    _ir_conv1_4x16 = _make_ir_conv(1)
    _ir_conv1_argmax_16 = _make_ir_conv1_choice(False)
    _ir_conv1_top2_16 = _make_ir_conv1_choice(True)
    IR_BUILT = True
except Exception as exc:  # a Numba or llvmlite without the internals used above
    IR_BUILT = False
    _IR_ERROR = exc
    _ir_conv3_4x16 = conv3_4x16_portable
    _ir_conv1_4x16 = conv1_4x16_portable
    _ir_conv1_argmax_16 = conv1_argmax_16_portable
    _ir_conv1_top2_16 = conv1_top2_16_portable
    _ir_dot4x16 = dot4x16_portable


# --- the kernels the engine calls: the IR or the portable code, by the type of ``simd`` ---


# The kernels the engine calls. ``simd`` is SIMD_ON or SIMD_OFF; in compiled code
# the choice is made when the caller is typed (Numba ``overload``s below), so
# only the chosen kernel is compiled: with an ``if`` in a jitted function both
# branches were typed, which compiled every portable kernel into the IR engine
# too (3-4 s of the first run's 20 s). As plain Python (``NUMBA_DISABLE_JIT``)
# the functions below are ordinary branches.


def conv3_4x16(simd, src, at, wf, ws, bf, bs, relu, dst, ds):
    """:func:`conv_4x16_portable` with 3 x 3 kernels; the IR with ``SIMD_ON``."""
    if len(simd):
        _ir_conv3_4x16(src, at, wf, ws, bf, bs, relu, dst, ds)
    else:
        conv3_4x16_portable(src, at, wf, ws, bf, bs, relu, dst, ds)


def conv1_4x16(simd, src, at, wf, ws, bf, bs, relu, dst, ds):
    """:func:`conv_4x16_portable` with 1 x 1 kernels; the IR with ``SIMD_ON``."""
    if len(simd):
        _ir_conv1_4x16(src, at, wf, ws, bf, bs, relu, dst, ds)
    else:
        conv1_4x16_portable(src, at, wf, ws, bf, bs, relu, dst, ds)


def conv1_argmax_16(simd, src, at, wf, bf, lay, choice, i_base):
    """:func:`conv1_choice_16_portable`, argmax only; the IR with ``SIMD_ON``."""
    if len(simd):
        _ir_conv1_argmax_16(src, at, wf, bf, lay, choice, i_base)
    else:
        conv1_argmax_16_portable(src, at, wf, bf, lay, choice, i_base)


def conv1_top2_16(simd, src, at, wf, bf, lay, choice, i_base):
    """:func:`conv1_choice_16_portable` with the top two; the IR with ``SIMD_ON``."""
    if len(simd):
        _ir_conv1_top2_16(src, at, wf, bf, lay, choice, i_base)
    else:
        conv1_top2_16_portable(src, at, wf, bf, lay, choice, i_base)


def dot4x16(simd, raw, off, qs, wf, wb, wstride, res, ss):
    """:func:`dot4x16_portable` over all ``len(off)`` taps; the IR with ``SIMD_ON``."""
    if len(simd):
        _ir_dot4x16(raw, off, off.shape[0], qs, wf, wb, wstride, res, ss)
    else:
        dot4x16_portable(raw, off, off.shape[0], qs, wf, wb, wstride, res, ss)


def _on(simd_type) -> bool:
    """Whether the Numba type of a ``simd`` argument is that of SIMD_ON."""
    return len(getattr(simd_type, "types", ())) > 0


if not JIT_DISABLED:

    @overload(conv3_4x16, inline="always")
    def _conv3_4x16_typed(simd, src, at, wf, ws, bf, bs, relu, dst, ds):
        kernel = _ir_conv3_4x16 if _on(simd) else conv3_4x16_portable
        return lambda simd, src, at, wf, ws, bf, bs, relu, dst, ds: kernel(
            src, at, wf, ws, bf, bs, relu, dst, ds
        )

    @overload(conv1_4x16, inline="always")
    def _conv1_4x16_typed(simd, src, at, wf, ws, bf, bs, relu, dst, ds):
        kernel = _ir_conv1_4x16 if _on(simd) else conv1_4x16_portable
        return lambda simd, src, at, wf, ws, bf, bs, relu, dst, ds: kernel(
            src, at, wf, ws, bf, bs, relu, dst, ds
        )

    @overload(conv1_argmax_16, inline="always")
    def _conv1_argmax_16_typed(simd, src, at, wf, bf, lay, choice, i_base):
        kernel = _ir_conv1_argmax_16 if _on(simd) else conv1_argmax_16_portable
        return lambda simd, src, at, wf, bf, lay, choice, i_base: kernel(src, at, wf, bf, lay, choice, i_base)

    @overload(conv1_top2_16, inline="always")
    def _conv1_top2_16_typed(simd, src, at, wf, bf, lay, choice, i_base):
        kernel = _ir_conv1_top2_16 if _on(simd) else conv1_top2_16_portable
        return lambda simd, src, at, wf, bf, lay, choice, i_base: kernel(src, at, wf, bf, lay, choice, i_base)

    @overload(dot4x16, inline="always")
    def _dot4x16_typed(simd, raw, off, qs, wf, wb, wstride, res, ss):
        kernel = _ir_dot4x16 if _on(simd) else dot4x16_portable
        return lambda simd, raw, off, qs, wf, wb, wstride, res, ss: kernel(
            raw, off, off.shape[0], qs, wf, wb, wstride, res, ss
        )


# --- array forms for tests, and the self-check ---------------------------------------


def conv_4x16_array(simd: bool, k, src, at, wf, ws, bf, bs, relu, dst, ds):
    """:func:`conv3_4x16` (``k`` 3) or :func:`conv1_4x16` (``k`` 1), the IR if ``simd``."""
    _conv_4x16_array(SIMD_ON if simd else SIMD_OFF, k, src, at, wf, ws, bf, bs, relu, dst, ds)


@nb.njit(**NJIT)
def _conv_4x16_array(simd, k, src, at, wf, ws, bf, bs, relu, dst, ds):
    if k == 3:
        conv3_4x16(simd, src, at, wf, ws, bf, bs, relu, dst, ds)
    else:
        conv1_4x16(simd, src, at, wf, ws, bf, bs, relu, dst, ds)


def conv1_choice_16_array(simd: bool, top2, src, at, wf, bf, lay, choice, i_base):
    """:func:`conv1_top2_16` (``top2``) or :func:`conv1_argmax_16`, the IR if ``simd``."""
    _conv1_choice_16_array(SIMD_ON if simd else SIMD_OFF, top2, src, at, wf, bf, lay, choice, i_base)


@nb.njit(**NJIT)
def _conv1_choice_16_array(simd, top2, src, at, wf, bf, lay, choice, i_base):
    if top2:
        conv1_top2_16(simd, src, at, wf, bf, lay, choice, i_base)
    else:
        conv1_argmax_16(simd, src, at, wf, bf, lay, choice, i_base)


def dot4x16_array(simd: bool, raw, off, qs, wf, wb, wstride, res, ss):
    """:func:`dot4x16`, the IR if ``simd``."""
    _dot4x16_array(SIMD_ON if simd else SIMD_OFF, raw, off, qs, wf, wb, wstride, res, ss)


@nb.njit(**NJIT)
def _dot4x16_array(simd, raw, off, qs, wf, wb, wstride, res, ss):
    dot4x16(simd, raw, off, qs, wf, wb, wstride, res, ss)


def dot4x16_reference(raw, off, q, wf, wb, wstride, res, s):
    """Plain NumPy :func:`dot4x16_array` (float64 sums, for tolerance checks)."""
    taps = np.arange(off.shape[0])
    w = wf[wb + taps[:, None] * wstride + np.arange(LANES)[None, :]]  # (T, 16)
    for p in range(4):
        x = raw[q[p] + off].astype(np.float64)
        res[s[p] : s[p] + LANES] = (x[:, None] * w).sum(axis=0)


def _same_bits(a, b) -> bool:
    return a.shape == b.shape and bool(np.all(a.view(np.uint32) == b.view(np.uint32)))


def self_check(seed: int = 0) -> bool:
    """Every kernel, IR against portable, on random data: all the same bits?
    (Raises if the IR does not compile.)"""
    rng = np.random.default_rng(seed)
    ok = True
    ci, rows, cols = 5, 3, 40
    src = rng.standard_normal(ci * rows * cols).astype(np.float32)
    for k in (1, 3):
        wf = rng.standard_normal(8 * ci * k * k).astype(np.float32)
        bf = rng.standard_normal(8).astype(np.float32)
        outs = (0, 2, 7, 7)  # a repeated output, as for a layer width not a multiple of 4
        ws = tuple(o * ci * k * k for o in outs)
        ds = tuple(o * LANES for o in outs)
        for relu in (True, False):
            got = [np.full(8 * LANES, np.nan, np.float32) for _ in range(2)]
            for simd, dst in zip((True, False), got):
                conv_4x16_array(simd, k, src, (3, rows * cols, cols, ci), wf, ws, bf, outs, relu, dst, ds)
            ok &= _same_bits(*got)
    co = 6
    wf = rng.standard_normal(co * ci).astype(np.float32) * 3
    bf = rng.standard_normal(co).astype(np.float32)
    for top2 in (False, True):
        got = []
        for simd in (True, False):
            choice = (np.zeros(20, np.int32), np.zeros(20, np.int32), np.zeros(20, np.float32))
            conv1_choice_16_array(simd, top2, src, (cols + 2, rows * cols), wf, bf, (ci, co, 0, 0), choice, 3)
            got.append(choice)
        ok &= all(np.array_equal(a, b) for a, b in zip(got[0][:2], got[1][:2]))
        ok &= _same_bits(got[0][2], got[1][2])
    raw = rng.standard_normal(500).astype(np.float32)
    off = rng.integers(0, 100, 37).astype(np.int64)
    wf = rng.standard_normal(37 * 32 + 16).astype(np.float32)
    got = [np.full(128, np.nan, np.float32) for _ in range(2)]
    for simd, res in zip((True, False), got):
        dot4x16_array(simd, raw, off, (0, 3, 3, 399), wf, 5, 32, res, (0, 16, 16, 96))
    ok &= _same_bits(*got)
    return bool(ok)


_ENABLED = None


def simd_enabled() -> bool:
    """Whether the engine runs the IR kernels in this process (see the module
    docstring). Decided from the environment and the IR's construction alone,
    so that it costs nothing per process; an IR that fails to compile is caught
    when the engine first runs (:func:`give_up`)."""
    global _ENABLED
    if _ENABLED is not None:
        return _ENABLED
    if JIT_DISABLED:
        _ENABLED = False
    elif not IR_BUILT:
        warnings.warn(
            f"explicit SIMD kernels unavailable ({_IR_ERROR!r}); using the portable ones",
            RuntimeWarning,
            stacklevel=2,
        )
        _ENABLED = False
    else:
        _ENABLED = not FORCED_OFF
    return _ENABLED


def give_up(exc: BaseException) -> None:
    """The IR did not compile with this Numba/LLVM (``exc``): warn, and run the
    portable kernels from now on (same results, slower)."""
    global _ENABLED, _ir_conv3_4x16, _ir_conv1_4x16, _ir_conv1_argmax_16, _ir_conv1_top2_16, _ir_dot4x16
    warnings.warn(
        f"explicit SIMD kernels do not compile ({type(exc).__name__}: {str(exc)[:200]}); "
        "using the portable ones",
        RuntimeWarning,
        stacklevel=3,
    )
    _ir_conv3_4x16 = conv3_4x16_portable
    _ir_conv1_4x16 = conv1_4x16_portable
    _ir_conv1_argmax_16 = conv1_argmax_16_portable
    _ir_conv1_top2_16 = conv1_top2_16_portable
    _ir_dot4x16 = dot4x16_portable
    _ENABLED = False

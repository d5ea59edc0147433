"""Run a PAFU model on an array: selector, per-pixel choice (argmax, or the top
two with ``mix`` 2), kernel apply, depth-to-space.

This is the array-level driver shared by :mod:`pafu_cli.demosaick` and
:mod:`pafu_cli.superres`: it lays the model's PyTorch-ordered weights out for
the banded engine (:mod:`pafu_cli.filters.pafu._band`, the one engine, for
every image size) and describes the run to it.

The engine's 16-lane kernels run as explicit SIMD (LLVM IR) or as portable
Numba code with the same bits; ``PAFU_SIMD=0`` forces the portable ones (see
:mod:`pafu_cli.filters.pafu._simd`). With ``NUMBA_DISABLE_JIT=1`` everything
runs as plain Python (slowly), the portable kernels included.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from pafu_cli.filters.pafu import _band, _simd
from pafu_cli.filters.pafu.model import PafuModel

BAND_ROWS = 16  # rows per band of the banded engine (at the model's input resolution)


def _packed_layers(model: PafuModel):
    """Selector weights/biases flattened for :func:`_band.run_bands`: ``(wf, bf,
    meta)`` with ``meta[l] = (c_out, c_in, k, weight offset, bias offset)``."""
    meta, wf, bf, woff, boff = [], [], [], 0, 0
    for w, b in zip(model.selector_weights, model.selector_biases):
        co, ci, k, _ = w.shape
        meta.append((co, ci, k, woff, boff))
        wf.append(np.asarray(w, np.float32).ravel())
        bf.append(np.asarray(b, np.float32).ravel())
        woff += w.size
        boff += b.size
    return (np.concatenate(wf), np.concatenate(bf), np.asarray(meta, dtype=np.int64))


def passthrough_outputs(model: PafuModel) -> np.ndarray:
    """(C_out,) int64: for each bank output, the input channel that every kernel
    copies unchanged (an exact centred Dirac, e.g. the known samples of a
    ``--passthrough`` demosaick model), or -1 where the output is computed."""
    n, co, ci, k, _ = model.bank.shape
    src = np.full(co, -1, dtype=np.int64)
    c = (k - 1) // 2
    fb = getattr(model, "feature_bank", None)
    for o in range(co):
        if fb is not None and np.any(fb[:, o] != 0):
            continue
        nz = np.argwhere(model.bank[:, o] != 0)  # (kernel, channel, dy, dx)
        if (
            len(nz) == n
            and np.all(nz[:, 2:] == c)
            and len(np.unique(nz[:, 1])) == 1
            and np.all(model.bank[:, o, nz[0, 1], c, c] == 1)
        ):
            src[o] = nz[0, 1]
    return src


def _apply_layout(model: PafuModel):
    """Bank and output table for the banded apply.

    Returns ``bank`` (n, T, C_pad) float32, tap-major: for kernel z and tap t
    (T = C_in K^2 taps in (c, dy, dx) order, zero outside the kernel's own
    support, as stored; a ``pafunet`` model's C_h kf^2 feature taps after them,
    :func:`_band.tap_offsets`), the C computed outputs, zero-padded to a multiple of
    16 (one SIMD register); and ``table`` (C_out, 4) int64: (dy, dx, colour,
    src) of each output in pixel_shuffle order, computed outputs first (in bank
    order, src = -1), then the copied ones (src = input channel).
    """
    n, co, ci, k, _ = model.bank.shape
    f = model.shuffle
    src = passthrough_outputs(model)
    order = np.concatenate([np.flatnonzero(src < 0), np.flatnonzero(src >= 0)])
    n_comp = int(np.sum(src < 0))
    lanes = _simd.LANES
    taps = model.bank.reshape(n, co, -1)
    fb = getattr(model, "feature_bank", None)
    if fb is not None:
        taps = np.concatenate([taps, fb.reshape(n, co, -1)], axis=2)
    bank = np.zeros((n, taps.shape[2], -(-max(n_comp, 1) // lanes) * lanes), dtype=np.float32)
    bank[:, :, :n_comp] = np.transpose(taps[:, order[:n_comp]], (0, 2, 1))
    table = np.stack([(order // f) % f, order % f, order // (f * f), src[order]], axis=1)
    return bank, np.ascontiguousarray(table, dtype=np.int64)


def _weights(model: PafuModel) -> _band.Weights:
    wf, bf, meta = _packed_layers(model)
    bank, table = _apply_layout(model)
    return _band.Weights(
        mean=np.ascontiguousarray(model.selector_input_mean, dtype=np.float32),
        scale=np.ascontiguousarray(model.selector_input_scale, dtype=np.float32),
        wf=wf,
        bf=bf,
        meta=meta,
        bank=bank,
        table=table,
    )


def _outputs(model: PafuModel, shape, h: int, w: int, out=None) -> _band.Outputs:
    """The arrays the engine writes: ``out`` (a window ``shape``), the choice
    arrays of the (h, w) model input (``idx2``, ``wt`` empty unless ``mix`` 2)."""
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    idx = np.empty((h, w), dtype=np.int32)
    if model.mix == 2:
        idx2, wt = np.empty((h, w), dtype=np.int32), np.empty((h, w), dtype=np.float32)
    else:
        idx2, wt = np.empty((0, 0), dtype=np.int32), np.empty((0, 0), dtype=np.float32)
    return _band.Outputs(out=out, idx=idx, idx2=idx2, wt=wt)


def _plan(model: PafuModel, meta, size, mosaic_pad, window, band: int, stages: int) -> _band.Plan:
    """The :class:`_band.Plan` of a run: ``size`` (h, w, c_in) of the model
    input, ``mosaic_pad`` (top, left) of a Bayer input's reflected padding (None
    for an array input), ``window`` (top, left) of the output window."""
    h, w, ci = size
    ctop, cleft = mosaic_pad if mosaic_pad is not None else (0, 0)
    top, left = window
    fb = getattr(model, "feature_bank", None)
    fc, fr = (0, 0) if fb is None else (fb.shape[2], (fb.shape[3] - 1) // 2)
    return _band.Plan(
        h=int(h),
        w=int(w),
        ci=int(ci),
        bayer=int(mosaic_pad is not None),
        ctop=int(ctop),
        cleft=int(cleft),
        s=int(model.shuffle),
        top=int(top),
        left=int(left),
        band=int(band),
        mix=int(model.mix),
        big_r=int((model.bank.shape[3] - 1) // 2),
        pad=int(max(1, fr, max((k - 1) // 2 for k in meta[:, 2]))),
        cmax=int(max(ci, meta[:, 0].max())),
        stages=int(stages),
        simd=int(_simd.simd_enabled()),
        fc=int(fc),
        fr=int(fr),
    )


def _run_banded(
    model: PafuModel, src: _band.Source, size, mosaic_pad, window, band: int, out=None, stages=_band.STAGES
):
    """Run the engine: ``window`` is ((rows, columns) or None for all, (top,
    left)) of the f-times larger result; ``out`` may be a buffer for the window."""
    h, w, _ = size
    f = model.shuffle
    out_shape, offset = window
    if out_shape is None:
        out_shape = (h * f, w * f)
    wts = _weights(model)
    outs = _outputs(model, tuple(out_shape) + (model.out_channels // (f * f),), h, w, out)
    plan = _plan(model, wts.meta, size, mosaic_pad, offset, band, stages)
    _band.run_bands(src, wts, plan, outs, nb.get_num_threads())
    return outs.out, outs.idx


def run(model: PafuModel, x: np.ndarray, out_shape=None, offset=(0, 0), band: int = BAND_ROWS):
    """Selector plus filtering on ``x`` (H, W, C_in) float32, any size (1 x 1 up).

    ``out_shape`` (rows, columns) and ``offset`` (top, left) pick a window of the
    f-times larger result (default: all of it), so callers that crop never hold
    the full result.

    Returns
    -------
    out : ndarray (H*f, W*f, C_out / f^2) float32, or the window
        Filtered result after depth-to-space by ``f = model.shuffle``.
    idx : ndarray (H, W) int32
        The kernel chosen at each pixel (with ``mix`` 2, the first of the two).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    src = _band.Source(x=x, cfa=np.zeros((0, 0), np.float32))
    return _run_banded(model, src, x.shape, None, (out_shape, offset), band)


def run_mosaic(
    model: PafuModel,
    cfa: np.ndarray,
    pattern: str,
    pad: int,
    band: int = BAND_ROWS,
    out: np.ndarray | None = None,
    stages: int = _band.STAGES,
):
    """A demosaick model on a Bayer mosaic (H, W) float32, any size, without
    materialising the packed quads: the mosaic is read as
    :func:`pafu_cli.cfa.to_packed_rggb` with margin ``pad`` would pack it.
    Returns ((H, W, 3) float32, quad indices). ``out``, if given, is a
    C-contiguous (H, W, 3) float32 array to fill (callers that process many
    bands reuse one, sparing the page faults of a fresh one). ``stages`` below
    ``_band.STAGES`` runs only the first stages of every band (profiling:
    ``benchmarks/profile_engine.py``; the results are then incomplete)."""
    from pafu_cli.cfa import packed_geometry

    cfa = np.ascontiguousarray(cfa, dtype=np.float32)
    h, w = cfa.shape
    top, left, hp, wp = packed_geometry(h, w, pattern, pad)
    src = _band.Source(x=np.zeros((0, 0, 0), np.float32), cfa=cfa)
    return _run_banded(
        model, src, (hp // 2, wp // 2, 4), (top, left), ((h, w), (top, left)), band, out, stages
    )

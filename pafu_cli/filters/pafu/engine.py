"""Run a PAFU model on an array: selector, per-pixel choice (argmax, or the top
two with ``mix`` 2), kernel apply.

This is the array-level core shared by :mod:`pafu_cli.demosaick` and
:mod:`pafu_cli.superres`; it converts the model's PyTorch-ordered weights to the
HWC layout the kernels in :mod:`pafu_cli._kernels` expect.
"""

from __future__ import annotations

import numpy as np

from pafu_cli.filters.pafu import _kernels
from pafu_cli.filters.pafu.model import PafuModel


def _hwio(w: np.ndarray) -> np.ndarray:
    """(Co, Ci, k, k) -> (k, k, Ci, Co), contiguous float32."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype=np.float32)


def _choice_arrays(model: PafuModel, h: int, w: int):
    """Arrays for the per-pixel choice: ``idx`` (H, W) int32, and for ``mix`` 2 the
    second kernel ``idx2`` (H, W) int32 and the first one's weight ``wt`` (H, W)
    float32 (else empty placeholders)."""
    idx = np.empty((h, w), dtype=np.int32)
    if model.mix == 2:
        return idx, np.empty((h, w), dtype=np.int32), np.empty((h, w), dtype=np.float32)
    return idx, np.empty((0, 0), dtype=np.int32), np.empty((0, 0), dtype=np.float32)


def select(model: PafuModel, x: np.ndarray):
    """The selector's choice for ``x`` (H, W, C_in): the kernel index (H, W) int32
    of every pixel, or with ``model.mix`` 2 the tuple (index, second index,
    weight of the first) of :func:`_choice_arrays`."""
    h, w, _ = x.shape
    feat = np.ascontiguousarray(
        (x - model.selector_input_mean) * model.selector_input_scale, dtype=np.float32
    )
    n_layers = len(model.selector_weights)
    for i in range(n_layers - 1):
        wt = _hwio(model.selector_weights[i])
        out = np.empty((h, w, wt.shape[3]), dtype=np.float32)
        _kernels.conv2d(feat, wt, model.selector_biases[i], True, out)
        feat = out
    choice = _choice_arrays(model, h, w)
    _kernels.conv2d_select(
        feat, _hwio(model.selector_weights[-1]), model.selector_biases[-1], model.mix, *choice
    )
    return choice if model.mix == 2 else choice[0]


def filter_selected(model: PafuModel, x: np.ndarray, choice) -> np.ndarray:
    """Apply the chosen kernels at every pixel (``choice`` as :func:`select` gives
    it): (H, W, C_out) float32."""
    if isinstance(choice, tuple):
        (idx, idx2, wt), mix = choice, 2
    else:
        idx, idx2, wt, mix = choice, np.empty((0, 0), np.int32), np.empty((0, 0), np.float32), 1
    bank = np.ascontiguousarray(np.transpose(model.bank, (0, 3, 4, 2, 1)), dtype=np.float32)
    radii = ((model.kernel_sizes - 1) // 2).astype(np.int32)
    out = np.empty(x.shape[:2] + (model.out_channels,), dtype=np.float32)
    _kernels.apply_bank(x, idx, mix, idx2, wt, bank, radii, out)
    return out


BAND_ROWS = 16  # rows per band of the banded engine (at the model's input resolution)


def margin(model: PafuModel) -> int:
    """Rows/columns beyond a pixel that its output depends on (selector plus bank)."""
    sel = sum((w.shape[2] - 1) // 2 for w in model.selector_weights)
    return sel + (model.bank.shape[3] - 1) // 2


def _packed_layers(model: PafuModel):
    """Selector weights/biases flattened for :func:`pafu_cli._band.run_bands`."""
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
    for o in range(co):
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
    support, as stored), the C computed outputs, zero-padded to a multiple of
    16 (one SIMD register); and ``table`` (C_out, 4) int64: (dy, dx, colour,
    src) of each output in pixel_shuffle order, computed outputs first (in bank
    order, src = -1), then the copied ones (src = input channel).
    """
    from pafu_cli.filters.pafu._simd import LANES

    n, co, ci, k, _ = model.bank.shape
    f = model.shuffle
    src = passthrough_outputs(model)
    order = np.concatenate([np.flatnonzero(src < 0), np.flatnonzero(src >= 0)])
    n_comp = int(np.sum(src < 0))
    bank = np.zeros((n, ci * k * k, -(-max(n_comp, 1) // LANES) * LANES), dtype=np.float32)
    bank[:, :, :n_comp] = np.transpose(model.bank.reshape(n, co, -1)[:, order[:n_comp]], (0, 2, 1))
    table = np.stack([(order // f) % f, order % f, order // (f * f), src[order]], axis=1)
    return bank, np.ascontiguousarray(table, dtype=np.int64)


def run(model: PafuModel, x: np.ndarray, out_shape=None, offset=(0, 0), band: int = BAND_ROWS):
    """Selector plus filtering on ``x`` (H, W, C_in) float32.

    ``out_shape`` (rows, columns) and ``offset`` (top, left) pick a window of the
    f-times larger result (default: all of it), so callers that crop never hold
    the full result.

    Returns
    -------
    out : ndarray (H*f, W*f, C_out / f^2) float32, or the window
        Filtered result after depth-to-space by ``f = model.shuffle``.
    idx : ndarray (H, W) int32
        The kernel chosen at each pixel.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    h, w, _ = x.shape
    if min(h, w) <= margin(model) + 1:  # too small for the banded engine's one-fold reflection
        return _run_layers(model, x, out_shape, offset)
    return _run_banded(model, h, w, x, np.zeros((0, 0), np.float32), 0, 0, out_shape, offset, band)


def run_mosaic(
    model: PafuModel,
    cfa: np.ndarray,
    pattern: str,
    pad: int,
    band: int = BAND_ROWS,
    out: np.ndarray | None = None,
):
    """A demosaick model on a Bayer mosaic (H, W) float32, without materialising
    the packed quads: the mosaic is read as :func:`pafu_cli.bayer.to_packed_rggb`
    with margin ``pad`` would pack it. Returns ((H, W, 3) float32, quad indices).
    ``out``, if given, is a C-contiguous (H, W, 3) float32 array to fill (callers
    that process many bands reuse one, sparing the page faults of a fresh one)."""
    from pafu_cli.cfa import packed_geometry, to_packed_rggb

    cfa = np.ascontiguousarray(cfa, dtype=np.float32)
    h, w = cfa.shape
    top, left, hp, wp = packed_geometry(h, w, pattern, pad)
    hq, wq = hp // 2, wp // 2
    if min(hq, wq) <= margin(model) + 1 or min(h, w) < 2:
        packed, _ = to_packed_rggb(cfa, pattern, pad)
        rgb, idx = _run_layers(model, packed, (h, w), (top, left))
        if out is not None:
            out[...] = rgb
            rgb = out
        return rgb, idx
    return _run_banded(
        model, hq, wq, np.zeros((hq, wq, 0), np.float32), cfa, top, left, (h, w), (top, left), band, out
    )


def _run_layers(model, x, out_shape, offset):
    """Layer-by-layer engine (:mod:`pafu_cli._kernels`), for images smaller than the margin."""
    choice = select(model, x)
    full = depth_to_space(filter_selected(model, x, choice), model.shuffle)
    idx = choice[0] if isinstance(choice, tuple) else choice
    if out_shape is None:
        out_shape = full.shape[:2]
    top, left = offset
    return np.ascontiguousarray(full[top : top + out_shape[0], left : left + out_shape[1]]), idx


def _run_banded(model, h, w, x, cfa, ctop, cleft, out_shape, offset, band, out=None):
    from pafu_cli.filters.pafu import _band

    f = model.shuffle
    if out_shape is None:
        out_shape = (h * f, w * f)
    top, left = offset
    wf, bf, meta = _packed_layers(model)
    shape = tuple(out_shape) + (model.out_channels // (f * f),)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    idx, idx2, wt = _choice_arrays(model, h, w)
    bank, table = _apply_layout(model)
    _band.run_bands(
        x,
        cfa,
        ctop,
        cleft,
        model.selector_input_mean.astype(np.float32),
        model.selector_input_scale.astype(np.float32),
        wf,
        bf,
        meta,
        bank,
        model.bank.shape[3],
        table,
        f,
        top,
        left,
        band,
        out,
        idx,
        model.mix,
        idx2,
        wt,
        _band.nb.get_num_threads(),
    )
    return out, idx


def depth_to_space(y: np.ndarray, s: int) -> np.ndarray:
    """(H, W, C*s*s) -> (H*s, W*s, C) in PyTorch ``pixel_shuffle`` channel order."""
    h, w, cs = y.shape
    out = np.empty((h * s, w * s, cs // (s * s)), dtype=np.float32)
    _kernels.depth_to_space(np.ascontiguousarray(y, dtype=np.float32), s, out)
    return out

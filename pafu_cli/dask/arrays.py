"""pafu's filters on ``dask.array`` arrays: images larger than memory, chunk by chunk.

Each chunk is filtered together with a border of its neighbours as wide as the
model's reach (its receptive margin), then the border is cut off; chunks on the
image's edges get no border there, so the filter meets the true image edge as it
does on the whole array. The result therefore equals the whole-array result
pixel for pixel (``tests/test_dask_arrays.py``), whatever the chunking.

Everything is lazy: the functions build a graph and return at once; a chunk is
read, filtered and written when the result is stored (``da.to_zarr``,
``da.store``) or computed, by the threaded scheduler or a ``dask.distributed``
cluster. The model enters the graph once, as one key, whatever the number of
chunks.
"""

from __future__ import annotations

import numpy as np

from pafu_cli.cfa import check_pattern


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as e:  # pragma: no cover - exercised without the extra
        raise ImportError(f"pafu_cli.dask needs Dask: pip install 'pafu[dask]' ({e})") from None
    return dask, da


def _as_dask(arr, what: str):
    dask, da = _dask()
    if not isinstance(arr, da.Array):
        arr = da.from_array(np.asarray(arr))
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"expected a numeric {what} array, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise ValueError(f"the {what} is empty (shape {arr.shape})")
    return arr


def _min_chunks(chunks: tuple, least: int) -> tuple:
    """``chunks`` of one axis with every chunk at least ``least`` long (a short
    chunk joins its neighbour), so that each chunk's border comes from its
    neighbour alone."""
    out = list(chunks)
    i = 0
    while len(out) > 1 and i < len(out):
        if out[i] < least:
            j = i - 1 if i > 0 else i + 1
            out[min(i, j)] = out[i] + out[j]
            del out[max(i, j)]
            i = 0
            continue
        i += 1
    return tuple(out)


def _aligned(chunks: tuple, step: int) -> tuple:
    """Chunk boundaries of one axis moved to multiples of ``step`` (none lost but
    those that would be empty)."""
    ends = np.cumsum(chunks)
    cuts = sorted({int(e) // step * step for e in ends[:-1]} - {0})
    bounds = [0, *cuts, int(ends[-1])]
    return tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))


def _prepared(arr, depth: tuple, spatial_chunks=None, col_step: int = 1):
    """``arr`` rechunked: axes 0 and 1 in chunks of at least ``depth`` (or of
    ``spatial_chunks`` first), column boundaries on multiples of ``col_step``,
    other axes whole."""
    if spatial_chunks is not None:
        arr = arr.rechunk({0: spatial_chunks, 1: spatial_chunks})
    cols = _aligned(arr.chunks[1], col_step)
    want = {0: _min_chunks(arr.chunks[0], depth[0]), 1: _min_chunks(cols, depth[1])}
    for ax in range(2, arr.ndim):
        want[ax] = -1
    return arr.rechunk(want)


def _borders(block_info, depth: tuple):
    """(top, bottom, left, right) border widths of the current block."""
    info = block_info[0]
    (i, j), (ni, nj) = info["chunk-location"][:2], info["num-chunks"][:2]
    return (
        depth[0] if i > 0 else 0,
        depth[0] if i < ni - 1 else 0,
        depth[1] if j > 0 else 0,
        depth[1] if j < nj - 1 else 0,
    )


def _with_borders(arr, depth: tuple):
    _, da = _dask()
    d = {0: depth[0], 1: depth[1]}
    for ax in range(2, arr.ndim):
        d[ax] = 0
    return da.overlap.overlap(arr, depth=d, boundary="none")


def _cut(y, borders, f: int):
    t, b, left, r = (v * f for v in borders)
    return y[t : y.shape[0] - b, left : y.shape[1] - r]


def _set_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


# ---------------------------------------------------------------------------
# Block functions (run on the workers)


def _upscale_block(x, model, scale, depth, threads, block_info=None):
    from pafu_cli.superres import upscale_window

    _set_threads(threads)
    t, b, left, r = borders = _borders(block_info, depth)
    size = ((x.shape[0] - t - b) * scale, (x.shape[1] - left - r) * scale)
    out, _ = upscale_window(x, model, size, (t * scale, left * scale))  # the border's outputs are not made
    assert out.shape[:2] == size, (out.shape, size, borders)
    return out


def _demosaick_block(x, model, pattern, depth, threads, block_info=None):
    from pafu_cli.demosaick import demosaick

    _set_threads(threads)
    borders = _borders(block_info, depth)
    y0, x0 = (loc[0] - b for loc, b in zip(block_info[None]["array-location"][:2], borders[::2]))
    shifted = "".join(pattern[2 * ((a + y0) % 2) + (c + x0) % 2] for a in (0, 1) for c in (0, 1))
    return np.ascontiguousarray(_cut(demosaick(x, shifted, model=model), borders, 1))


# ---------------------------------------------------------------------------
# Public functions


def upscale(arr, scale: int, model=None, *, chunks=None, threads: int = 1):
    """:func:`pafu_cli.upscale` on a dask array (or any array, wrapped).

    Parameters
    ----------
    arr : dask.array (H, W, 3) or (H, W)
        Float in [0, 1] or integers (divided by the dtype's maximum), as for
        :func:`pafu_cli.upscale`.
    scale : {2, 3, 4}
    model : None, name, path or PafuModel
    chunks : int, optional
        Rechunk rows and columns to this size first (default: keep ``arr``'s
        chunks; chunks shorter than the model's reach are merged).
    threads : int
        Numba threads per chunk (the scheduler runs chunks in parallel).

    Returns
    -------
    dask.array (sH, sW, 3) or (sH, sW) float32, unclipped; chunk (i, j) is
    ``scale`` times input chunk (i, j).
    """
    from pafu_cli.filters.pafu._simd import LANES
    from pafu_cli.filters.pafu.model import receptive_margin
    from pafu_cli.models.registry import resolve_model
    from pafu_cli.superres import SCALES

    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale not in SCALES:
        raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
    dask, da = _dask()
    arr = _as_dask(arr, "image")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {arr.shape}")
    m = resolve_model(model, "upscale", int(scale))
    # The engine computes the last columns of a row (its width modulo LANES) in a
    # vector group that overlaps the previous one; a chunk's right edge meets the
    # image's only if its columns start on the same multiple of LANES.
    depth = (receptive_margin(m) + 1, -(-(receptive_margin(m) + 1) // LANES) * LANES)
    x = _prepared(arr, depth, chunks, LANES)
    xo = _with_borders(x, depth)
    out_chunks = tuple(tuple(c * scale for c in ch) for ch in x.chunks[:2]) + x.chunks[2:]
    return da.map_blocks(
        _upscale_block,
        xo,
        dask.delayed(m, pure=True),
        int(scale),
        depth,
        threads,
        dtype=np.float32,
        chunks=out_chunks,
        token="pafu-upscale",
    )


def demosaick(cfa, pattern: str = "RGGB", model=None, *, chunks=None, threads: int = 1):
    """:func:`pafu_cli.demosaick` on a dask array: a Bayer mosaic (H, W) in, a
    dask array (H, W, 3) float32 (unclipped) out. Chunks may start on any row
    and column: each chunk is demosaicked with the pattern of its own first
    sample. ``chunks``, ``threads``: as for :func:`upscale`."""
    from pafu_cli.demosaick import packing_pad
    from pafu_cli.models.registry import resolve_model

    pattern = check_pattern(pattern)
    dask, da = _dask()
    cfa = _as_dask(cfa, "mosaic")
    if cfa.ndim != 2 or min(cfa.shape) < 2:
        raise ValueError(f"a Bayer mosaic must be 2-D (H, W) of at least 2x2 samples, got {cfa.shape}")
    m = resolve_model(model, "demosaick")
    depth = (packing_pad(m) + 2,) * 2
    x = _prepared(cfa, depth, chunks)
    xo = _with_borders(x, depth)
    return da.map_blocks(
        _demosaick_block,
        xo,
        dask.delayed(m, pure=True),
        pattern,
        depth,
        threads,
        dtype=np.float32,
        chunks=x.chunks + ((3,),),
        new_axis=2,
        token="pafu-demosaick",
    )


def quantise(arr, bits: int = 8):
    """Float results in [0, 1] as uint8 or uint16, rounded (as pafu writes files)."""
    from pafu_cli.jobs.output import to_bits

    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    return arr.map_blocks(to_bits, bits, dtype=np.uint8 if bits == 8 else np.uint16)


def _guided_block(x, g, valid, method, s, depth, stats, threads, block_info=None):
    """One block of :func:`guided_upsample`: x (h, w, C), g (s h, s w, 1 or 3),
    valid (h, w, 1)."""
    from pafu_cli.guided import guided_upsample

    _set_threads(threads)
    borders = _borders(block_info, depth)
    size = (x.shape[0] * s, x.shape[1] * s)
    g = g[..., 0] if g.shape[2] == 1 else g
    valid = valid[..., 0]
    if isinstance(method, str):
        y = guided_upsample(x, g, size, method=method, mask=valid)
    else:
        from pafu_cli.filters.pac import engine

        ok = np.isfinite(x).all(axis=2) & (valid > 0)
        xs = np.where(ok[..., None], x, 0).astype(np.float32)
        if g.dtype.kind == "f":
            g = g.astype(np.float32, copy=False)
        norm = [(a, b) if np.isfinite(a) else None for a, b in zip(*stats)]
        y = engine.run(method, xs, g, size, valid=ok.astype(np.float32), norm=norm)
        y = y if y.ndim == 3 else y[..., None]
    return np.ascontiguousarray(_cut(y, borders, s))


def _range(x, valid):
    """Per channel (nanmin, nanmax) of the valid samples, as dask arrays."""
    _, da = _dask()
    xs = x if x.ndim == 3 else x[..., None]
    ok = da.isfinite(xs) & (valid[..., None] > 0)
    v = da.where(ok, xs, np.nan)
    return da.nanmin(v, axis=(0, 1)), da.nanmax(v, axis=(0, 1))


def guided_upsample(lowres, guide, *, method=None, mask=None, chunks=None, threads: int = 1):
    """:func:`pafu_cli.guided_upsample` on dask arrays, for a guide exactly ``s``
    times the map's size (an integer ``s`` >= 2; for a learned model, one of its
    scales).

    ``lowres`` (h, w) or (h, w, C) with NaN holes, ``guide`` (s h, s w, 3) or
    (s h, s w), ``mask`` (h, w) optional; dask or NumPy arrays. The guide is
    rechunked to ``s`` times the map's chunks (``chunks``: the map's, in
    low-resolution pixels). A learned model scales the map by the range of its
    valid samples: that is taken over the whole map first (one pass over the
    small map), so that every chunk sees the same scaling.

    Returns a dask array (s h, s w[, C]) float32.
    """
    from pafu_cli.guided import DEFAULT_METHOD, METHODS

    method = DEFAULT_METHOD if method is None else method
    dask, da = _dask()
    x = _as_dask(lowres, "map")
    g = _as_dask(guide, "guide")
    if x.ndim not in (2, 3) or g.ndim not in (2, 3):
        raise ValueError(f"expected a map (h, w[, C]) and a guide (H, W[, 3]), got {x.shape} and {g.shape}")
    h, w = x.shape[:2]
    s = g.shape[0] // h
    if s < 2 or g.shape[:2] != (s * h, s * w):
        raise ValueError(
            f"the guide {g.shape[:2]} must be an integer multiple (2 or more) of the map {(h, w)} "
            "for chunked processing; resize it first"
        )
    if isinstance(method, str) and method in METHODS:
        model, reach, stats = method, 3, None
    else:
        from pafu_cli.models.registry import resolve_model

        model = resolve_model(method, "guided_upsample")
        if s not in model.scales:
            raise ValueError(
                f"{model.name} upsamples by {', '.join(map(str, model.scales))}, not {s}, in chunks; "
                "give method='jbu' (any integer scale)"
            )
        reach = 6  # three 3x3 convolutions and the 5x5 window of samples, plus one
    valid = da.ones((h, w), np.float32, chunks=x.chunks[:2]) if mask is None else _as_dask(mask, "mask")
    if valid.shape != (h, w):
        raise ValueError(f"mask must have the map's shape {(h, w)}, got {valid.shape}")
    depth = (reach, reach)
    x = _prepared(x, depth, chunks)
    valid = valid.astype(np.float32).rechunk(x.chunks[:2])
    g = g.rechunk(
        tuple(tuple(c * s for c in ch) for ch in x.chunks[:2]) + ((g.shape[2],) if g.ndim == 3 else ())
    )
    if not isinstance(model, str):
        stats = dask.delayed(lambda lo, hi: (np.asarray(lo), np.asarray(hi)), pure=True)(*_range(x, valid))
        model = dask.delayed(model, pure=True)
    # Every operand three-dimensional with one chunk on axis 2, so that blocks pair by index.
    x3 = x if x.ndim == 3 else x[..., None]
    g3 = g if g.ndim == 3 else g[..., None]
    xo = _with_borders(x3, depth)
    go = _with_borders(g3, (reach * s, reach * s))
    vo = _with_borders(valid[..., None], depth)
    out_chunks = tuple(tuple(c * s for c in ch) for ch in x.chunks[:2]) + x3.chunks[2:]
    y = da.map_blocks(
        _guided_block,
        xo,
        go,
        vo,
        model,
        s,
        depth,
        stats,
        threads,
        dtype=np.float32,
        chunks=out_chunks,
        token="pafu-guided-upsample",
    )
    return y if x.ndim == 3 else y[..., 0]

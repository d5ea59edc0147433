"""``pafu upscale`` for one file and for arrays: streaming by row bands, the x8
self-ensemble, alpha upscaled bilinearly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pafu_cli._arrays import check_finite, full_scale
from pafu_cli.filters.pafu.model import PafuModel, receptive_margin
from pafu_cli.io.images import image_shape, read_image, write_image, write_rows
from pafu_cli.jobs.banding import (
    BAND_BYTES_PER_PIXEL,
    BAND_PIXELS,
    UPSCALE_BYTES_PER_IN_PIXEL,
    UPSCALE_BYTES_PER_OUT_PIXEL,
    upscale_band_iter,
    upscale_bands,
)
from pafu_cli.jobs.output import check_targets, to_bits
from pafu_cli.jobs.selection_map import selection_picture
from pafu_cli.limits import check_memory
from pafu_cli.models.registry import resolve_model
from pafu_cli.superres import upscale

# The ensemble's float32 RGB accumulator of the eight passes, per output pixel.
ENSEMBLE_BYTES_PER_OUT_PIXEL = 12
# Input rows of kernel indices turned into selection-map rows at a time.
SELECTION_STRIP_ROWS = 256


@dataclasses.dataclass(frozen=True)
class UpscaleOptions:
    """Options of ``pafu upscale``."""

    scale: int = 2
    model: object = None
    ensemble: bool = False
    bits: int | None = None
    selection_map: str | None = None
    overwrite: bool = False
    chunks: int | None = None  # input pixels per chunk side: process with Dask, chunk by chunk


_DIHEDRAL = [(k, f) for f in (False, True) for k in range(4)]


def _transform(x, k, f):
    y = x[:, ::-1] if f else x
    return np.rot90(y, k)


def _untransform(y, k, f):
    y = np.rot90(y, -k)
    return y[:, ::-1] if f else y


def _split_alpha(img: np.ndarray):
    """(colour or grey, alpha or None) of an (H, W[, C]) image; C = 2 or 4 has alpha."""
    if img.ndim == 3 and img.shape[2] in (2, 4):
        colour = img[..., :-1]
        return (colour[..., 0] if colour.shape[2] == 1 else colour), img[..., -1]
    return img, None


def upscale_stream(img: np.ndarray, scale: int, model: PafuModel, want_sel: bool = False):
    """As :func:`upscale_array` without ensemble, one row band at a time: yields
    ``(out rows, sel rows or None)`` (float32, unclipped) so that the caller can
    write them out; memory stays near :data:`BAND_PIXELS` output pixels whatever
    the image size."""
    colour, alpha = _split_alpha(img)
    bands = upscale_band_iter(colour, scale, model, want_sel)
    if alpha is None:
        for _, _, y, idx in bands:
            yield y, idx
        return
    lin = resolve_model("bilinear", "upscale", scale)
    margin = receptive_margin(lin) + 1
    h = img.shape[0]
    for r0, r1, y, idx in bands:
        a, b = max(0, r0 - margin), min(h, r1 + margin)
        al = upscale(np.ascontiguousarray(alpha[a:b]), scale, model=lin)[(r0 - a) * scale : (r1 - a) * scale]
        yield np.concatenate([y if y.ndim == 3 else y[..., None], al[..., None]], axis=2), idx


def upscale_array(
    img: np.ndarray, scale: int, model: PafuModel, ensemble: bool = False, want_sel: bool = False
):
    """Upscale an image array (float32 in [0, 1]; (H, W), (H, W, 2..4)); alpha plainly.

    Returns float32 (sH, sW[, C]) unclipped, and the (H, W) kernel index or None.
    """
    img, alpha = _split_alpha(img)
    if ensemble:
        acc = None
        sel = None
        for k, f in _DIHEDRAL:
            y, s = upscale_bands(
                np.ascontiguousarray(_transform(img, k, f)), scale, model, want_sel and k == 0 and not f
            )
            y = _untransform(y, k, f)
            acc = y.copy() if acc is None else np.add(acc, y, out=acc)
            sel = s if s is not None else sel
        out = acc * np.float32(1 / 8)
    else:
        out, sel = upscale_bands(img, scale, model, want_sel)
    if alpha is not None:
        a, _ = upscale_bands(alpha, scale, resolve_model("bilinear", "upscale", scale), False)
        out = np.concatenate([out if out.ndim == 3 else out[..., None], a[..., None]], axis=2)
    return out, sel


def check_options(opts: UpscaleOptions) -> None:
    """What every file of a run shares, checked once before the first: the model."""
    resolve_model(opts.model, "upscale", opts.scale)


def upscale_file(src, dst, opts: UpscaleOptions) -> None:
    """``pafu upscale`` for one file."""
    check_targets(dst, opts.selection_map, opts.overwrite)
    if opts.chunks:
        return _upscale_chunked(src, dst, opts)
    shape = image_shape(src)
    if len(shape) >= 2:
        n_in = shape[0] * shape[1]
        n_out = n_in * opts.scale**2
        if opts.ensemble:  # whole result in memory
            need = n_out * (UPSCALE_BYTES_PER_OUT_PIXEL + ENSEMBLE_BYTES_PER_OUT_PIXEL)
        else:  # streamed: the input (as read and as float32), the output only for JPEG
            need = n_in * UPSCALE_BYTES_PER_IN_PIXEL
            if Path(dst).suffix.lower() in (".jpg", ".jpeg"):
                need += n_out * 4
            if opts.selection_map:
                need += n_in * 4
        check_memory(src, need + BAND_PIXELS * BAND_BYTES_PER_PIXEL, "upscaling")
    model = resolve_model(opts.model, "upscale", opts.scale)
    img = read_image(src)
    top = full_scale(img.dtype)
    bits = opts.bits or (8 if img.dtype == np.uint8 else 16)
    if Path(dst).suffix.lower() in (".jpg", ".jpeg") and opts.bits is None:
        bits = 8
    dtype = np.uint8 if bits == 8 else np.uint16
    s = opts.scale
    if opts.ensemble:  # eight transformed passes over the whole image: held in memory
        out, sel = upscale_array(img.astype(np.float32) / top, s, model, True, bool(opts.selection_map))
        check_finite(out, src, model.name)
        write_image(dst, to_bits(out, bits), overwrite=opts.overwrite)
    else:  # streamed: one row band at a time from input to output file
        x = img.astype(np.float32) / top
        del img
        sel = np.empty(x.shape[:2], np.int32) if opts.selection_map else None
        done = [0]

        def blocks():
            for y, idx in upscale_stream(x, s, model, sel is not None):
                if sel is not None:
                    sel[done[0] : done[0] + len(idx)] = idx
                done[0] += y.shape[0] // s
                check_finite(y, src, model.name)
                yield to_bits(y, bits)

        shape = (x.shape[0] * s, x.shape[1] * s) + ((x.shape[2],) if x.ndim == 3 else ())
        write_rows(dst, shape, dtype, blocks(), overwrite=opts.overwrite)
    if sel is not None:

        def pictures():
            for r0 in range(0, sel.shape[0], SELECTION_STRIP_ROWS):
                band = sel[r0 : r0 + SELECTION_STRIP_ROWS]
                yield selection_picture(np.repeat(np.repeat(band, s, axis=0), s, axis=1), model.n_kernels)

        write_rows(
            opts.selection_map,
            (sel.shape[0] * s, sel.shape[1] * s, 3),
            np.uint8,
            pictures(),
            overwrite=opts.overwrite,
        )


def _upscale_chunked(src, dst, opts: UpscaleOptions) -> None:
    """``pafu upscale --chunks N``: the input read chunk by chunk (a TIFF never whole,
    see :func:`pafu_cli.io.images.open_image_lazy`), upscaled by
    :func:`pafu_cli.dask.upscale` on this machine's threads, and written one row
    of chunks at a time: memory holds a row of output chunks, not the image.
    The pixels equal those of the streamed path (TIFF files are byte-identical;
    PNG's compressed stream depends on the row blocks)."""
    from pafu_cli.io.images import open_image_lazy

    model = resolve_model(opts.model, "upscale", opts.scale)
    with open_image_lazy(src) as img:
        _write_upscaled_chunks(img, dst, model, opts)


def _write_upscaled_chunks(img, dst, model, opts: UpscaleOptions) -> None:
    import dask.array as da

    from pafu_cli.dask import arrays as dk

    s = opts.scale
    colour, alpha = (img[..., :-1], img[..., -1]) if img.ndim == 3 and img.shape[2] in (2, 4) else (img, None)
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[..., 0]
    # Integer chunks are divided by their dtype's maximum, as the whole image is.
    y = dk.upscale(colour, s, model, chunks=opts.chunks)
    if alpha is not None:
        a = dk.upscale(alpha, s, resolve_model("bilinear", "upscale", s), chunks=opts.chunks)
        y = da.concatenate([y if y.ndim == 3 else y[..., None], a.rechunk(y.chunks[:2])[..., None]], axis=2)
    bits = opts.bits or (8 if img.dtype == np.uint8 else 16)
    if Path(dst).suffix.lower() in (".jpg", ".jpeg") and opts.bits is None:
        bits = 8
    q = dk.quantise(y, bits)

    def blocks():
        for i in range(q.numblocks[0]):
            yield q.blocks[i].compute(scheduler="threads")  # on this machine, even inside a Dask worker

    write_rows(dst, q.shape, q.dtype, blocks(), overwrite=opts.overwrite)

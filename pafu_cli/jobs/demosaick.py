"""``pafu demosaick`` for one file: a RAW file, or a one-channel mosaic PNG/TIFF."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from pafu_cli._arrays import check_finite, full_scale
from pafu_cli.errors import InputError
from pafu_cli.io.images import IMAGE_EXTENSIONS, image_shape, read_image, write_image, write_rows
from pafu_cli.jobs.banding import (
    BAND_BYTES_PER_PIXEL,
    BAND_PIXELS,
    RAW_BYTES_PER_PIXEL,
    demosaick_bands,
)
from pafu_cli.jobs.output import check_targets, to_bits
from pafu_cli.jobs.selection_map import selection_picture
from pafu_cli.limits import check_memory
from pafu_cli.models.choice import choose_model
from pafu_cli.models.registry import resolve_model
from pafu_cli.raw.pipeline import read_raw_loading_kernels, render_raw_strips
from pafu_cli.raw.read import raw_pixel_count

log = logging.getLogger("pafu")


# Bytes per pixel held for a whole mosaic image besides one band's work: the mosaic
# as read (2), its float32 noise/colour sample (at most 4), the RGB output (6), the
# selection indices (2) and picture (3), and the decoder's and encoder's copies of
# input and output (up to 8 + 12), rounded up.
MOSAIC_BYTES_PER_PIXEL = 40


@dataclasses.dataclass(frozen=True)
class DemosaickOptions:
    """Options of ``pafu demosaick`` (see the command's help)."""

    model: object = None
    denoise: str = "auto"
    colours: str = "auto"
    pattern: str | None = None
    wb: str = "camera"
    auto_bright: bool = True
    bright: float = 1.0
    gamma: str = "srgb"
    bits: int | None = None
    selection_map: str | None = None
    overwrite: bool = False
    quality: str = "standard"


def check_options(opts: DemosaickOptions) -> None:
    """What every file of a run shares, checked once before the first: a model
    given by name or path (the automatic choice picks among shipped models)."""
    if opts.model is not None:
        resolve_model(opts.model, "demosaick")
    elif opts.quality != "standard":
        from pafu_cli.models.registry import quality_model

        quality_model("demosaick", 1, opts.quality)


def demosaick_file(src, dst, opts: DemosaickOptions) -> None:
    """``pafu demosaick`` for one file: a RAW file, or a one-channel mosaic PNG/TIFF."""
    check_targets(dst, opts.selection_map, opts.overwrite)
    ext = Path(src).suffix.lower()
    if ext in (".jpg", ".jpeg"):
        raise InputError(
            f"{src}: a JPEG cannot hold a Bayer mosaic (lossy); give a RAW file "
            "or a one-channel PNG/TIFF mosaic"
        )
    if ext in IMAGE_EXTENSIONS:
        out, pic = _demosaick_mosaic_image(src, opts)
    else:
        if opts.pattern:
            log.warning("%s: --pattern is ignored for RAW files (the file says its pattern)", src)
        n = raw_pixel_count(src)
        check_memory(
            src,
            n * (RAW_BYTES_PER_PIXEL + (2 if opts.selection_map else 0)) + BAND_PIXELS * BAND_BYTES_PER_PIXEL,
            "demosaicking",
        )
        t0 = time.perf_counter()
        raw, plan, rgb16 = read_raw_loading_kernels(src, opts)
        t1 = time.perf_counter()
        shape, dtype, strips, pic = render_raw_strips(raw, opts, rgb16, plan)
        del raw  # the mosaic is no longer needed while the strips are written
        t2 = time.perf_counter()
        write_rows(dst, shape, dtype, strips, overwrite=opts.overwrite)
        log.info(
            "%s: read %.2f s (with loading the kernels), render %.2f s, curve + write %.2f s",
            src,
            t1 - t0,
            t2 - t1,
            time.perf_counter() - t2,
        )
        if pic is not None:
            write_image(opts.selection_map, pic, overwrite=opts.overwrite)
        return
    if opts.bits == 16 and out.dtype == np.uint8:
        out = out.astype(np.uint16) * np.uint16(257)
    write_image(dst, out, overwrite=opts.overwrite)
    if pic is not None:
        write_image(opts.selection_map, pic, overwrite=opts.overwrite)


def _demosaick_mosaic_image(src, opts: DemosaickOptions):
    if not opts.pattern:
        raise InputError(f"{src}: a mosaic image needs --pattern RGGB|BGGR|GRBG|GBRG")
    shape = image_shape(src)
    check_memory(
        src, shape[0] * shape[1] * MOSAIC_BYTES_PER_PIXEL + BAND_PIXELS * BAND_BYTES_PER_PIXEL, "demosaicking"
    )
    img = read_image(src)
    if img.ndim != 2:
        raise InputError(
            f"{src}: has {img.shape[2]} channels; a mosaic image must have one (or give a RAW file)"
        )
    if min(img.shape) < 2:
        raise InputError(f"{src}: a mosaic needs at least 2x2 samples, got {img.shape}")
    top = full_scale(img.dtype)
    sample = img[:1024, :1024].astype(np.float32) / top
    model = choose_model(src, opts.pattern, None, opts, sample, linear=False)
    h, w = img.shape
    bits = opts.bits or (8 if img.dtype == np.uint8 else 16)
    out = np.empty((h, w, 3), np.uint8 if bits == 8 else np.uint16)
    sel = np.empty((h, w), np.uint16) if opts.selection_map else None

    def rows(a, b):
        return img[a:b].astype(np.float32) / top

    for r0, r1, rgb, band_sel in demosaick_bands(rows, h, w, opts.pattern, model, sel is not None):
        check_finite(rgb, src, model.name)
        out[r0:r1] = to_bits(rgb, bits)
        if sel is not None:
            sel[r0:r1] = band_sel
    pic = selection_picture(sel, model.n_kernels) if sel is not None else None
    return out, pic

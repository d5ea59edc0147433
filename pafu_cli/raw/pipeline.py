"""A RAW file rendered like LibRaw with a PAFU demosaick inside: the per-file plan
(white balance, model, matrix), the banded demosaick into a 16-bit image, the
auto-brightness histogram, and the tone curve with the orientation in strips."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np

from pafu_cli import _cache
from pafu_cli._arrays import check_finite
from pafu_cli.demosaick import demosaick
from pafu_cli.filters.pafu.model import PafuModel
from pafu_cli.jobs.banding import band_margin, band_rows, demosaick_bands
from pafu_cli.jobs.selection_map import selection_picture
from pafu_cli.models.choice import choose_model
from pafu_cli.raw.read import read_raw
from pafu_cli.raw.render import (
    GAMMAS,
    apply_matrix,
    auto_white,
    camera_to_srgb,
    colour_index,
    gamma_curve,
    grey_world,
    libraw_border,
    orient,
    scale_mosaic,
    wb_scale,
    white_point,
)

if TYPE_CHECKING:
    from pafu_cli.jobs.demosaick import DemosaickOptions

log = logging.getLogger("pafu")


def _white_balance(raw, wb: str, maximum: float):
    """White-balance multipliers and whether they are the camera's, as LibRaw
    chooses them (``scale_colors``): with ``camera``, a file that records no
    as-shot white (``camera_wb[0]`` 0 or -1, e.g. a DNG without
    ``AsShotNeutral``) gets automatic grey world, as in LibRaw 0.20 and later;
    a red multiplier without a blue one leaves the daylight multipliers."""
    cam = raw.camera_wb
    day = raw.daylight_wb if np.all(raw.daylight_wb[:3] > 0) else np.ones(4, np.float32)
    missing = cam[0] <= 1e-5
    if wb == "auto" or (wb == "camera" and missing):
        if wb == "camera":
            log.info("%s: no as-shot white balance; using automatic (grey world)", raw.path)
        return grey_world(raw.cfa, raw.pattern, raw.black, maximum), False
    if wb == "camera" and cam[2] > 1e-5:
        return cam, True
    if wb == "camera":
        log.info("%s: incomplete as-shot white balance; using daylight", raw.path)
    return day, False


CURVE_STRIP_ROWS = 256


_HIST_BLOCKS = 16  # partial histograms counted in parallel (summed at the end)


def render_raw_strips(raw, opts: DemosaickOptions, rgb16=None, plan=None):
    """:func:`render_raw` with the final image as strips of rows (the same pixels),
    so that it can be written without holding it: returns ``(shape, dtype,
    strips, sel)``; ``strips`` yields views of one reused buffer. ``rgb16`` and
    ``plan``: as in :func:`_render_linear`."""
    from pafu_cli.raw import _kernels as rk

    rgb16, lut, flip, pic = _render_linear(raw, opts, rgb16, plan)
    h, w, _ = rgb16.shape
    shape = (w, h, 3) if flip & 4 else (h, w, 3)

    def strips():
        buf = np.empty((min(CURVE_STRIP_ROWS, shape[0]),) + shape[1:], lut.dtype)
        for r0 in range(0, shape[0], CURVE_STRIP_ROWS):
            part = buf[: min(CURVE_STRIP_ROWS, shape[0] - r0)]
            rk.curve_oriented_rows(rgb16, lut, flip, r0, part)
            yield part

    return shape, lut.dtype, strips(), pic


@dataclasses.dataclass
class RenderPlan:
    """The per-file decisions of a RAW render, made before any demosaicking:
    white-balance scale per colour, model, camera->sRGB matrix (or None) and
    LibRaw's frame (bilinear only)."""

    scale: np.ndarray
    model: PafuModel
    matrix: np.ndarray | None
    frame: tuple | None


def plan_render(raw, opts: DemosaickOptions) -> RenderPlan:
    """:class:`RenderPlan` of a :class:`RawData` (NumPy only: it can run
    beside the loading of the Numba kernels)."""
    cfa, pattern = raw.cfa, raw.pattern
    h, w = cfa.shape
    maximum = white_point(cfa, pattern, raw.black, raw.white)
    pre_mul, cam_used = _white_balance(raw, opts.wb, maximum)
    scale = wb_scale(pre_mul, maximum)
    cy, cx = (h // 2) & ~1, (w // 2) & ~1
    sample = cfa[max(0, cy - 512) : cy + 512, max(0, cx - 512) : cx + 512]
    sample = scale_mosaic(sample, pattern, raw.black, scale) / np.float32(65535)
    model = choose_model(raw.path, pattern, raw.iso, opts, sample, linear=True)
    matrix = camera_to_srgb(raw.color_matrix, raw.rgb_xyz_matrix, raw.is_dng, cam_used)
    if matrix is None and raw.probed_matrix is not None:
        # LibRaw's built-in matrix for this camera, which rawpy does not expose.
        matrix = raw.probed_matrix
        log.info(
            "%s: colour matrix probed from LibRaw: %s",
            raw.path,
            [[round(float(v), 4) for v in row] for row in matrix],
        )
    # LibRaw's own 1-pixel frame makes the bilinear bank reproduce LINEAR exactly.
    frame = libraw_border(cfa, pattern, raw.black, scale) if model.name == "bilinear" else None
    return RenderPlan(scale, model, matrix, frame)


def _render_linear(raw, opts: DemosaickOptions, rgb16=None, plan: RenderPlan | None = None):
    """Everything of :func:`render_raw` before the tone curve: the 16-bit
    camera->sRGB image (not oriented), the curve as a lookup table (uint8 or
    uint16 output), the orientation code and the selection picture (or None).
    ``rgb16``: an (H, W, 3) uint16 buffer to render into (else a new one);
    ``plan``: :func:`plan_render`'s result, if already made."""
    cfa, pattern = raw.cfa, raw.pattern
    h, w = cfa.shape
    if plan is None:
        plan = plan_render(raw, opts)
    scale, model, matrix, frame = plan.scale, plan.model, plan.matrix, plan.frame

    from pafu_cli.raw import _kernels as rk

    colours = colour_index(pattern).astype(np.int64)
    black32 = np.asarray(raw.black, np.float32)
    scale64 = np.asarray(scale, np.float64)

    rows_buf = np.empty((min(h, band_rows(h, w) + 2 * band_margin(model)), w), np.float32)  # for all bands

    def rows(a, b):  # scale_mosaic(cfa[a:b]) / 65535, fused
        x = rows_buf[: b - a] if b - a <= len(rows_buf) else np.empty((b - a, w), np.float32)
        rk.scale_mosaic01(np.ascontiguousarray(cfa[a:b]), colours, black32, scale64, a % 2, x)
        return x

    if rgb16 is None or rgb16.shape != (h, w, 3) or rgb16.dtype != np.uint16:
        rgb16 = np.empty((h, w, 3), np.uint16)
    sel = np.empty((h, w), np.uint16) if opts.selection_map else None
    m32 = np.asarray(matrix if matrix is not None else np.eye(3), np.float32)
    # The histogram of the 16-bit values is counted band by band while they are
    # in the cache, except where LibRaw's frame then changes some of them.
    counts = np.zeros((_HIST_BLOCKS, 3, 0x2000), np.int64) if frame is None and opts.auto_bright else None
    for r0, r1, rgb, band_sel in demosaick_bands(rows, h, w, pattern, model, sel is not None):
        check_finite(rgb, raw.path, model.name)
        band16 = rgb16[r0:r1]
        if counts is not None:  # quantise + apply_matrix, and histogram
            rk.to_rgb16_counting(rgb, m32, matrix is not None, band16, counts)
        else:
            rk.to_rgb16(rgb, m32, matrix is not None, band16)
        if frame is not None:  # LibRaw's frame, then the same matrix step on those pixels
            ys, xs, vals = frame
            inside = (ys >= r0) & (ys < r1)
            if inside.any():
                q = vals[inside].astype(np.float32)[None]
                band16[ys[inside] - r0, xs[inside]] = apply_matrix(q, matrix)[0]
        if sel is not None:
            sel[r0:r1] = band_sel
    gamma = GAMMAS[opts.gamma]
    white = 0x2000 << 3
    if opts.auto_bright:
        hist = counts.sum(axis=0) if counts is not None else rk.histogram(rgb16)
        white = auto_white(hist, h * w)
    curve = gamma_curve(gamma, int(white / opts.bright))
    lut = (curve >> 8).astype(np.uint8) if (opts.bits or 8) == 8 else curve
    pic = None
    if sel is not None:
        pic = orient(selection_picture(sel, model.n_kernels), raw.flip)
    return rgb16, lut, raw.flip, pic


_KERNELS_LOADED = False


def _load_kernels() -> None:
    """Load (or, on a first run, compile) the engine's and the renderer's machine
    code by running them once on a tiny input."""
    global _KERNELS_LOADED
    if _KERNELS_LOADED:
        return
    _cache.announce_compilation()
    from pafu_cli.raw import _kernels as rk

    rgb = demosaick(np.full((64, 64), 0.5, np.float32), "RGGB")
    rgb16 = np.empty(rgb.shape, np.uint16)
    rk.to_rgb16_counting(
        rgb, np.eye(3, dtype=np.float32), True, rgb16, np.zeros((_HIST_BLOCKS, 3, 0x2000), np.int64)
    )
    rk.curve_oriented_rows(rgb16, np.zeros(65536, np.uint16), 0, 0, np.empty((2, 64, 3), np.uint16))
    rk.scale_mosaic01(
        np.zeros((2, 2), np.uint16),
        np.zeros((2, 2), np.int64),
        np.zeros(4, np.float32),
        np.ones(4),
        0,
        np.empty((2, 2), np.float32),
    )
    _KERNELS_LOADED = True


def _touched(shape, dtype) -> np.ndarray:
    """A new array whose memory pages are already mapped (one write per page),
    so that the first pass over it does not pay the page faults."""
    a = np.empty(shape, dtype)
    a.reshape(-1).view(np.uint8)[::4096] = 0
    return a


def _read_and_plan(src, opts: DemosaickOptions):
    raw = read_raw(src)
    log.info(
        "%s: %dx%d %s, black %s, white %g, flip %d",
        src,
        raw.cfa.shape[1],
        raw.cfa.shape[0],
        raw.pattern,
        raw.black.tolist(),
        raw.white,
        raw.flip,
    )
    rgb16 = _touched(raw.cfa.shape + (3,), np.uint16)
    return raw, plan_render(raw, opts), rgb16


def read_raw_loading_kernels(src, opts: DemosaickOptions):
    """:func:`read_raw` and :func:`plan_render` in a thread while this one loads
    the Numba kernels (0.3-0.4 s of Python in a fresh process); LibRaw decodes
    and NumPy computes without the GIL, so the two run at once. The reader also
    maps the memory of the 16-bit image (0.07-0.1 s of page faults at 24 MP).
    Returns ``(raw, plan, rgb16)``."""
    if _KERNELS_LOADED:
        return _read_and_plan(src, opts)
    if not _cache.kernels_cached():  # compiling takes long: refuse a bad file first
        out = _read_and_plan(src, opts)
        _load_kernels()
        return out
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(_read_and_plan, src, opts)
        try:
            _load_kernels()
        finally:
            out = job.result()  # raises the reader's error, if any
    return out

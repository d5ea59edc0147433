"""File-to-file jobs behind ``pafu demosaick`` and ``pafu upscale``.

Images are processed in row bands with a margin wider than the model's
receptive field, so each band's result equals the whole-image result bit for
bit while the float32 working set stays near :data:`BAND_PIXELS` pixels.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from . import io, render
from .bayer import RED_OFFSET
from .demosaick import demosaick, receptive_margin
from .errors import InputError, ModelError
from .models import VIVID_COLOURFULNESS, PafuModel, pick_colour_model, pick_denoise_model, resolve_model
from .superres import upscale

log = logging.getLogger("pafu")

BAND_PIXELS = 1 << 22
# Denoise "auto": ISO at or above which a file always gets a denoising model.
DENOISE_ISO = 3200
# Bytes per pixel held for a whole image, on top of one band's float32 work
# (the band's input and RGB output; the banded engine's own buffers are a few MB).
_RAW_BYTES_PER_PIXEL = 2 + 6 + 6 + 6 + 2
_BAND_BYTES_PER_PIXEL = 4 + 12 + 8
_UPSCALE_BYTES_PER_OUT_PIXEL = 4 * 3 * 2 + 2 * 4
_UPSCALE_BYTES_PER_IN_PIXEL = 4 * (2 + 4)


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


@dataclasses.dataclass(frozen=True)
class UpscaleOptions:
    """Options of ``pafu upscale``."""

    scale: int = 2
    model: object = None
    ensemble: bool = False
    bits: int | None = None
    selection_map: str | None = None
    overwrite: bool = False


def memory_limit() -> int:
    """Bytes one job may use: ``PAFU_MEMORY_LIMIT`` (e.g. ``2G``), else 80% of available."""
    env = os.environ.get("PAFU_MEMORY_LIMIT", "").strip()
    if env:
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        mult = units.get(env[-1].upper(), 1)
        return int(float(env.rstrip("kKmMgG")) * mult)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 * 8 // 10
    except OSError:
        pass
    return 8 << 30


def check_memory(path, needed: int, what: str) -> None:
    """Refuse an image whose processing would need more than :func:`memory_limit`."""
    limit = memory_limit()
    if needed > limit:
        raise InputError(f"{path}: image too large for memory ({what} needs about "
                         f"{needed / 2**30:.1f} GiB, {limit / 2**30:.1f} GiB available); "
                         "crop or downscale it first")


def _out_path_check(path, overwrite: bool) -> None:
    if path is not None and Path(path).exists() and not overwrite:
        from .errors import OutputError

        raise OutputError(f"{path}: file exists; use --overwrite to replace it")


def selection_picture(idx: np.ndarray, n_kernels: int) -> np.ndarray:
    """Colour-code kernel indices (any shape (H, W)) as an (H, W, 3) uint8 picture.

    Kernel k gets hue ``k * 0.618...`` (golden-ratio steps), so neighbouring
    indices get clearly different colours; the mapping depends only on k.
    """
    k = np.arange(max(n_kernels, 1))
    hue = (k * 0.6180339887) % 1.0
    sat, val = 0.75, 0.95
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - sat * f), val * (1 - sat * (1 - f))
    table = np.select(
        [i[:, None] == j for j in range(6)],
        [np.stack([val + 0 * f, t, p + 0 * f], 1), np.stack([q, val + 0 * f, p + 0 * f], 1),
         np.stack([p + 0 * f, val + 0 * f, t], 1), np.stack([p + 0 * f, q, val + 0 * f], 1),
         np.stack([t, p + 0 * f, val + 0 * f], 1), np.stack([val + 0 * f, p + 0 * f, q], 1)],
    )
    lut = np.round(table * 255).astype(np.uint8)
    return lut[np.clip(idx, 0, len(lut) - 1)]


def _to_bits(x01: np.ndarray, bits: int) -> np.ndarray:
    top = 255 if bits == 8 else 65535
    out = np.clip(x01, 0, 1) * np.float32(top)
    np.rint(out, out=out)
    return out.astype(np.uint8 if bits == 8 else np.uint16)


# --- demosaick ---------------------------------------------------------------


def _band_rows(h: int, w: int) -> int:
    rows = max(16, BAND_PIXELS // max(w, 1))
    return min(h + (h % 2), rows + rows % 2)


def _band_margin(model: PafuModel) -> int:
    """Mosaic rows around a band that its result depends on (even)."""
    margin = 2 * receptive_margin(model) + 2
    return margin + margin % 2


def demosaick_bands(get_rows, h: int, w: int, pattern: str, model: PafuModel, want_sel: bool):
    """Yield ``(r0, r1, rgb, sel)`` for row bands of an (h, w) mosaic.

    ``get_rows(a, b)`` returns rows a..b-1 of the model input (float32, [0, 1]);
    ``a`` is always even so the pattern is unchanged. ``rgb`` is a view of one
    buffer reused for every band: use it before asking for the next band. ``sel`` is the (r1-r0, w)
    kernel index of every pixel (or None).
    """
    margin = _band_margin(model)
    rows = _band_rows(h, w)
    ry, rx = RED_OFFSET[pattern]
    buf = np.empty((min(h, rows + 2 * margin), w, 3), np.float32)  # one result buffer for all bands
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - margin), min(h, r1 + margin)
        x = get_rows(a, b)
        rgb, idx = demosaick(x, pattern, model=model, return_selection=True, out=buf[: b - a])
        sel = None
        if want_sel:
            qy = np.minimum((np.arange(r0 - a, r1 - a) + ry) // 2, idx.shape[0] - 1)
            qx = np.minimum((np.arange(w) + rx) // 2, idx.shape[1] - 1)
            sel = idx[qy[:, None], qx[None, :]]
        yield r0, r1, rgb[r0 - a : r1 - a], sel


def _choose_model(where, pattern, iso, opts: DemosaickOptions, scaled_sample, linear: bool):
    """The demosaick model for one file: ``--model``, else by ``--denoise``
    and, where that leaves the noise-free model, by ``--colours``.

    ``--denoise off``: the noise-free model. ``on``: the denoising family member
    nearest to the estimated noise level. ``auto``: the family member nearest
    to the estimate, the noise-free model included (it stands for clean
    pictures); ISO >= :data:`DENOISE_ISO` rules the noise-free model out.
    The model so chosen, or its vivid twin (:func:`models.vivid_twin`, where
    installed) for colourful pictures with ``--colours auto`` (or always with
    ``vivid``).
    """
    if opts.model is not None:
        m = resolve_model(opts.model, "demosaick")
        log.info("%s: model %s", where, m.name)
        return m
    base = None  # the model the noise level calls for (None: the noise-free default)
    if opts.denoise != "off":
        noise = render.noise_level(scaled_sample)
        iso_txt = f"ISO {iso:.0f}" if iso else "ISO unknown"
        high_iso = iso is not None and iso >= DENOISE_ISO
        try:
            m = pick_denoise_model(noise, allow_clean=opts.denoise == "auto" and not high_iso)
        except ModelError as e:
            if opts.denoise == "on":
                raise
            log.warning("%s: %s; using the noise-free model", where, e)
            m = None
        denoising = m is not None and m.noise_sigma > 0
        log.info("%s: denoise %s (%s, noise estimate %.4f = %.1f/255): %s", where, opts.denoise,
                 iso_txt, noise, noise * 255, f"model {m.name}" if denoising else "noise-free")
        if denoising:
            base = m.name
    colourful = render.mosaic_colourfulness(scaled_sample, pattern, linear=linear)
    m = pick_colour_model(colourful, opts.colours, base)
    log.info("%s: colours %s (colourfulness %.3f, vivid above %.2f): model %s",
             where, opts.colours, colourful, VIVID_COLOURFULNESS, m.name)
    return m


def _white_balance(raw, wb: str, maximum: float):
    cam = raw.camera_wb
    day = raw.daylight_wb if np.all(raw.daylight_wb[:3] > 0) else np.ones(4, np.float32)
    if wb == "auto" or (wb == "camera" and cam[0] == -1):
        if wb == "camera":
            log.info("%s: no as-shot white balance; using automatic (grey world)", raw.path)
        return render.grey_world(raw.cfa, raw.pattern, raw.black, maximum), False
    if wb == "camera" and cam[0] > 0 and cam[2] > 0:
        return cam, True
    if wb == "camera":
        log.info("%s: no as-shot white balance; using daylight", raw.path)
    return day, False


def render_raw(raw, opts: DemosaickOptions):
    """Render a :class:`io.RawData` the way LibRaw does, with a PAFU demosaick inside.

    Returns
    -------
    out : ndarray (H', W', 3) uint8 or uint16, oriented
    sel : ndarray (H', W', 3) uint8 selection picture, or None
    """
    from . import _render_kernels as rk

    rgb16, lut, flip, pic = _render_linear(raw, opts)
    h, w, _ = rgb16.shape
    out = np.empty((w, h, 3) if flip & 4 else (h, w, 3), lut.dtype)
    rk.curve_oriented_rows(rgb16, lut, flip, 0, out)
    return out, pic


CURVE_STRIP_ROWS = 256
_HIST_BLOCKS = 16  # partial histograms counted in parallel (summed at the end)


def render_raw_strips(raw, opts: DemosaickOptions, rgb16=None, plan=None):
    """:func:`render_raw` with the final image as strips of rows (the same pixels),
    so that it can be written without holding it: returns ``(shape, dtype,
    strips, sel)``; ``strips`` yields views of one reused buffer. ``rgb16`` and
    ``plan``: as in :func:`_render_linear`."""
    from . import _render_kernels as rk

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
    """:class:`RenderPlan` of a :class:`io.RawData` (NumPy only: it can run
    beside the loading of the Numba kernels)."""
    cfa, pattern = raw.cfa, raw.pattern
    h, w = cfa.shape
    maximum = render.white_point(cfa, pattern, raw.black, raw.white)
    pre_mul, cam_used = _white_balance(raw, opts.wb, maximum)
    scale = render.wb_scale(pre_mul, maximum)
    cy, cx = (h // 2) & ~1, (w // 2) & ~1
    sample = cfa[max(0, cy - 512) : cy + 512, max(0, cx - 512) : cx + 512]
    sample = render.scale_mosaic(sample, pattern, raw.black, scale) / np.float32(65535)
    model = _choose_model(raw.path, pattern, raw.iso, opts, sample, linear=True)
    matrix = render.camera_to_srgb(raw.color_matrix, raw.rgb_xyz_matrix, raw.is_dng, cam_used)
    if matrix is None and raw.probed_matrix is not None:
        # LibRaw's built-in matrix for this camera, which rawpy does not expose.
        matrix = raw.probed_matrix
        log.info("%s: colour matrix probed from LibRaw: %s", raw.path,
                 [[round(float(v), 4) for v in row] for row in matrix])
    # LibRaw's own 1-pixel frame makes the bilinear bank reproduce LINEAR exactly.
    frame = render.libraw_border(cfa, pattern, raw.black, scale) if model.name == "bilinear" else None
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

    from . import _render_kernels as rk

    colours = render.colour_index(pattern).astype(np.int64)
    black32 = np.asarray(raw.black, np.float32)
    scale64 = np.asarray(scale, np.float64)

    rows_buf = np.empty((min(h, _band_rows(h, w) + 2 * _band_margin(model)), w), np.float32)  # for all bands

    def rows(a, b):  # render.scale_mosaic(cfa[a:b]) / 65535, fused
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
        band16 = rgb16[r0:r1]
        if counts is not None:  # render.quantise + apply_matrix, and render.histogram
            rk.to_rgb16_counting(rgb, m32, matrix is not None, band16, counts)
        else:
            rk.to_rgb16(rgb, m32, matrix is not None, band16)
        if frame is not None:  # LibRaw's frame, then the same matrix step on those pixels
            ys, xs, vals = frame
            inside = (ys >= r0) & (ys < r1)
            if inside.any():
                q = vals[inside].astype(np.float32)[None]
                band16[ys[inside] - r0, xs[inside]] = render.apply_matrix(q, matrix)[0]
        if sel is not None:
            sel[r0:r1] = band_sel
    gamma = render.GAMMAS[opts.gamma]
    white = 0x2000 << 3
    if opts.auto_bright:
        hist = counts.sum(axis=0) if counts is not None else rk.histogram(rgb16)
        white = render.auto_white(hist, h * w)
    curve = render.gamma_curve(gamma, int(white / opts.bright))
    lut = (curve >> 8).astype(np.uint8) if (opts.bits or 8) == 8 else curve
    pic = None
    if sel is not None:
        pic = render.orient(selection_picture(sel, model.n_kernels), raw.flip)
    return rgb16, lut, raw.flip, pic


def demosaick_file(src, dst, opts: DemosaickOptions) -> None:
    """``pafu demosaick`` for one file: a RAW file, or a one-channel mosaic PNG/TIFF."""
    _out_path_check(dst, opts.overwrite)
    _out_path_check(opts.selection_map, opts.overwrite)
    ext = Path(src).suffix.lower()
    if ext in (".jpg", ".jpeg"):
        raise InputError(f"{src}: a JPEG cannot hold a Bayer mosaic (lossy); give a RAW file "
                         "or a one-channel PNG/TIFF mosaic")
    if ext in io.IMAGE_EXTENSIONS:
        out, pic = _demosaick_mosaic_image(src, opts)
    else:
        if opts.pattern:
            log.warning("%s: --pattern is ignored for RAW files (the file says its pattern)", src)
        n = io.raw_pixel_count(src)
        check_memory(src, n * (_RAW_BYTES_PER_PIXEL + (2 if opts.selection_map else 0))
                     + BAND_PIXELS * _BAND_BYTES_PER_PIXEL, "demosaicking")
        t0 = time.perf_counter()
        raw, plan, rgb16 = _read_raw_loading_kernels(src, opts)
        t1 = time.perf_counter()
        shape, dtype, strips, pic = render_raw_strips(raw, opts, rgb16, plan)
        del raw  # the mosaic is no longer needed while the strips are written
        t2 = time.perf_counter()
        io.write_rows(dst, shape, dtype, strips, overwrite=opts.overwrite)
        log.info("%s: read %.2f s (with loading the kernels), render %.2f s, curve + write %.2f s",
                 src, t1 - t0, t2 - t1, time.perf_counter() - t2)
        if pic is not None:
            io.write_image(opts.selection_map, pic, overwrite=opts.overwrite)
        return
    if opts.bits == 16 and out.dtype == np.uint8:
        out = out.astype(np.uint16) * np.uint16(257)
    io.write_image(dst, out, overwrite=opts.overwrite)
    if pic is not None:
        io.write_image(opts.selection_map, pic, overwrite=opts.overwrite)


_KERNELS_LOADED = False


def _load_kernels() -> None:
    """Load (or, on a first run, compile) the engine's and the renderer's machine
    code by running them once on a tiny input."""
    global _KERNELS_LOADED
    if _KERNELS_LOADED:
        return
    from . import _render_kernels as rk

    rgb = demosaick(np.full((64, 64), 0.5, np.float32), "RGGB")
    rgb16 = np.empty(rgb.shape, np.uint16)
    rk.to_rgb16_counting(rgb, np.eye(3, dtype=np.float32), True, rgb16,
                         np.zeros((_HIST_BLOCKS, 3, 0x2000), np.int64))
    rk.curve_oriented_rows(rgb16, np.zeros(65536, np.uint16), 0, 0, np.empty((2, 64, 3), np.uint16))
    rk.scale_mosaic01(np.zeros((2, 2), np.uint16), np.zeros((2, 2), np.int64), np.zeros(4, np.float32),
                      np.ones(4), 0, np.empty((2, 2), np.float32))
    _KERNELS_LOADED = True


def _touched(shape, dtype) -> np.ndarray:
    """A new array whose memory pages are already mapped (one write per page),
    so that the first pass over it does not pay the page faults."""
    a = np.empty(shape, dtype)
    a.reshape(-1).view(np.uint8)[:: 4096] = 0
    return a


def _read_and_plan(src, opts: DemosaickOptions):
    raw = io.read_raw(src)
    log.info("%s: %dx%d %s, black %s, white %g, flip %d", src, raw.cfa.shape[1],
             raw.cfa.shape[0], raw.pattern, raw.black.tolist(), raw.white, raw.flip)
    rgb16 = _touched(raw.cfa.shape + (3,), np.uint16)
    return raw, plan_render(raw, opts), rgb16


def _read_raw_loading_kernels(src, opts: DemosaickOptions):
    """:func:`io.read_raw` and :func:`plan_render` in a thread while this one loads
    the Numba kernels (0.3-0.4 s of Python in a fresh process); LibRaw decodes
    and NumPy computes without the GIL, so the two run at once. The reader also
    maps the memory of the 16-bit image (0.07-0.1 s of page faults at 24 MP).
    Returns ``(raw, plan, rgb16)``."""
    if _KERNELS_LOADED:
        return _read_and_plan(src, opts)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(_read_and_plan, src, opts)
        try:
            _load_kernels()
        finally:
            out = job.result()  # raises the reader's error, if any
    return out


def _demosaick_mosaic_image(src, opts: DemosaickOptions):
    if not opts.pattern:
        raise InputError(f"{src}: a mosaic image needs --pattern RGGB|BGGR|GRBG|GBRG")
    shape = io.image_shape(src)
    check_memory(src, shape[0] * shape[1] * 40 + BAND_PIXELS * _BAND_BYTES_PER_PIXEL,
                 "demosaicking")
    img = io.read_image(src)
    if img.ndim != 2:
        raise InputError(f"{src}: has {img.shape[2]} channels; a mosaic image must have one "
                         "(or give a RAW file)")
    if min(img.shape) < 2:
        raise InputError(f"{src}: a mosaic needs at least 2x2 samples, got {img.shape}")
    top = np.float32(np.iinfo(img.dtype).max) if img.dtype.kind == "u" else np.float32(1)
    sample = img[:1024, :1024].astype(np.float32) / top
    model = _choose_model(src, opts.pattern, None, opts, sample, linear=False)
    h, w = img.shape
    bits = opts.bits or (8 if img.dtype == np.uint8 else 16)
    out = np.empty((h, w, 3), np.uint8 if bits == 8 else np.uint16)
    sel = np.empty((h, w), np.uint16) if opts.selection_map else None

    def rows(a, b):
        return img[a:b].astype(np.float32) / top

    for r0, r1, rgb, band_sel in demosaick_bands(rows, h, w, opts.pattern, model, sel is not None):
        out[r0:r1] = _to_bits(rgb, bits)
        if sel is not None:
            sel[r0:r1] = band_sel
    pic = selection_picture(sel, model.n_kernels) if sel is not None else None
    return out, pic


# --- upscale -----------------------------------------------------------------

_DIHEDRAL = [(k, f) for f in (False, True) for k in range(4)]


def _transform(x, k, f):
    y = x[:, ::-1] if f else x
    return np.rot90(y, k)


def _untransform(y, k, f):
    y = np.rot90(y, -k)
    return y[:, ::-1] if f else y


def upscale_band_iter(x: np.ndarray, scale: int, model: PafuModel, want_sel: bool):
    """Yield ``(r0, r1, out, sel)``: rows ``r0*s .. r1*s`` of the upscaled (H, W, 3) or
    (H, W) float32 ``x`` and the kernel index of input rows ``r0 .. r1`` (or None).

    Each band is computed with a margin beyond the model's receptive field, so
    the bands are the whole-image result bit for bit.
    """
    h, w = x.shape[:2]
    margin = receptive_margin(model) + 1
    rows = max(8, BAND_PIXELS // (max(w, 1) * scale * scale))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - margin), min(h, r1 + margin)
        y, idx = upscale(np.ascontiguousarray(x[a:b]), scale, model=model, return_selection=True)
        yield r0, r1, y[(r0 - a) * scale : (r1 - a) * scale], (idx[r0 - a : r1 - a] if want_sel else None)


def upscale_bands(x: np.ndarray, scale: int, model: PafuModel, want_sel: bool):
    """Upscale (H, W, 3) or (H, W) float32 in row bands: (out, sel or None)."""
    h, w = x.shape[:2]
    out = np.empty((h * scale, w * scale) + x.shape[2:], np.float32)
    sel = np.empty((h, w), np.int32) if want_sel else None
    for r0, r1, y, idx in upscale_band_iter(x, scale, model, want_sel):
        out[r0 * scale : r1 * scale] = y
        if sel is not None:
            sel[r0:r1] = idx
    return out, sel


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


def upscale_array(img: np.ndarray, scale: int, model: PafuModel, ensemble: bool = False,
                  want_sel: bool = False):
    """Upscale an image array (float32 in [0, 1]; (H, W), (H, W, 2..4)); alpha plainly.

    Returns float32 (sH, sW[, C]) unclipped, and the (H, W) kernel index or None.
    """
    img, alpha = _split_alpha(img)
    if ensemble:
        acc = None
        sel = None
        for k, f in _DIHEDRAL:
            y, s = upscale_bands(np.ascontiguousarray(_transform(img, k, f)), scale, model,
                                 want_sel and k == 0 and not f)
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


def upscale_file(src, dst, opts: UpscaleOptions) -> None:
    """``pafu upscale`` for one file."""
    _out_path_check(dst, opts.overwrite)
    _out_path_check(opts.selection_map, opts.overwrite)
    shape = io.image_shape(src)
    if len(shape) >= 2:
        n_in = shape[0] * shape[1]
        n_out = n_in * opts.scale ** 2
        if opts.ensemble:  # whole result in memory
            need = n_out * (_UPSCALE_BYTES_PER_OUT_PIXEL + 12)
        else:  # streamed: the input (as read and as float32), the output only for JPEG
            need = n_in * _UPSCALE_BYTES_PER_IN_PIXEL
            if Path(dst).suffix.lower() in (".jpg", ".jpeg"):
                need += n_out * 4
            if opts.selection_map:
                need += n_in * 4
        check_memory(src, need + BAND_PIXELS * _BAND_BYTES_PER_PIXEL, "upscaling")
    model = resolve_model(opts.model, "upscale", opts.scale)
    img = io.read_image(src)
    top = np.float32(np.iinfo(img.dtype).max) if img.dtype.kind == "u" else np.float32(1)
    bits = opts.bits or (8 if img.dtype == np.uint8 else 16)
    if Path(dst).suffix.lower() in (".jpg", ".jpeg") and opts.bits is None:
        bits = 8
    dtype = np.uint8 if bits == 8 else np.uint16
    s = opts.scale
    if opts.ensemble:  # eight transformed passes over the whole image: held in memory
        out, sel = upscale_array(img.astype(np.float32) / top, s, model, True, bool(opts.selection_map))
        io.write_image(dst, _to_bits(out, bits), overwrite=opts.overwrite)
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
                yield _to_bits(y, bits)

        shape = (x.shape[0] * s, x.shape[1] * s) + ((x.shape[2],) if x.ndim == 3 else ())
        io.write_rows(dst, shape, dtype, blocks(), overwrite=opts.overwrite)
    if sel is not None:
        def pictures():
            for r0 in range(0, sel.shape[0], 256):
                band = sel[r0 : r0 + 256]
                yield selection_picture(np.repeat(np.repeat(band, s, axis=0), s, axis=1), model.n_kernels)

        io.write_rows(opts.selection_map, (sel.shape[0] * s, sel.shape[1] * s, 3), np.uint8, pictures(),
                      overwrite=opts.overwrite)

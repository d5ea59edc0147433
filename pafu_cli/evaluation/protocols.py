"""Quality tables with the standard protocols (the numbers in README).

Super-resolution (EDSR/BasicSR convention, as ``ANCHORS.md``): HR 8-bit RGB
mod-cropped to a multiple of s, LR = MATLAB bicubic on uint8 (our
:func:`pafu_cli.evaluation.resize.imresize`, bit-exact with ``Set5_LR``), Y-PSNR (BT.601)
with s pixels shaved; Set14's one-channel ``bridge`` is scored on its grey value.

Demosaicking: ground truth 8-bit sRGB as float in [0, 1], RGGB mosaic, optional
N(0, sigma^2) noise on the mosaic (sigma in 0..255 units, seeded with
``1000 * sigma + image index``), clipped to [0, 1]; output clipped, rounded to
uint8; CPSNR with the 10-pixel ``imcpsnr`` border (b10) and on the whole image (b0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pafu_cli.cfa import mosaic
from pafu_cli.errors import InputError
from pafu_cli.evaluation.metrics import cpsnr, to_uint8, y_psnr
from pafu_cli.evaluation.resize import imresize, modcrop
from pafu_cli.io.images import read_image
from pafu_cli.models.choice import pick_model

GREY_IMAGES = {"bridge"}


def _images(folder):
    """(name, (H, W, 3) uint8) of a test set's PNG files, by name; grey ones repeated."""
    for p in sorted(Path(folder).glob("*.png")):
        im = read_image(p)
        if im.dtype != np.uint8:
            raise InputError(f"{p}: test images must be 8-bit, got {im.dtype}")
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        yield p.stem, im[..., :3]


def sr_scores(folder, scale: int, model, ensemble: bool = False) -> dict:
    """Per-image Y-PSNR of ``model`` (a PafuModel or a name) on one test set."""
    from pafu_cli.jobs.upscale import upscale_array
    from pafu_cli.models.registry import resolve_model

    m = resolve_model(model, "upscale", scale)
    scores = {}
    for name, im in _images(folder):
        hr = modcrop(im, scale)
        lr = imresize(hr, 1.0 / scale).astype(np.float32) / 255
        out, _ = upscale_array(lr, scale, m, ensemble=ensemble)
        scores[name] = y_psnr(out, hr.astype(np.float64) / 255, scale, grey=name in GREY_IMAGES)
    return scores


def bicubic_sr_scores(folder, scale: int) -> dict:
    """The same protocol for MATLAB bicubic upscaling (the baseline)."""
    scores = {}
    for name, im in _images(folder):
        hr = modcrop(im, scale)
        lr = imresize(hr, 1.0 / scale)
        out = imresize(lr.astype(np.float64) / 255, scale)
        scores[name] = y_psnr(out, hr.astype(np.float64) / 255, scale, grey=name in GREY_IMAGES)
    return scores


def noisy_mosaic(im8: np.ndarray, sigma: float, index: int) -> np.ndarray:
    """The RGGB mosaic of a uint8 RGB picture in [0, 1], with N(0, sigma^2)
    noise (0..255 units; seeded with ``1000 * sigma + index``), clipped."""
    cfa = mosaic(im8.astype(np.float32) / 255, "RGGB")
    if sigma:
        rng = np.random.default_rng(int(1000 * sigma) + index)
        cfa = np.clip(cfa + rng.normal(0, sigma / 255, cfa.shape), 0, 1).astype(np.float32)
    return cfa


def demosaick_scores(
    folder, model, sigma: float = 0.0, denoise=None, picks=None, colours=None, quality="standard"
) -> dict:
    """Per-image (CPSNR b10, CPSNR b0) on one test set; ``sigma`` in 0..255 units.

    ``denoise`` "on" or "auto", ``colours`` "auto", "natural" or "vivid":
    instead of ``model``, each image gets the model that ``pafu demosaick
    --denoise on|auto --colours ...`` would pick from the noise estimate and
    the colourfulness of its (noisy) mosaic (:func:`pafu_cli.models.choice.pick_model`;
    ``denoise`` None: the noise-free model; ``colours`` None: as "natural", no
    vivid twins); ``quality`` "high": the pick's high form, as ``--quality high``
    (with neither ``denoise`` nor ``colours``: the noise-free model's);
    ``picks`` (a dict) counts the choices.
    """
    from pafu_cli.demosaick import demosaick
    from pafu_cli.models.registry import resolve_model

    pick = bool(denoise or colours or quality != "standard")
    m = None if pick else resolve_model(model, "demosaick")
    scores = {}
    for i, (name, im) in enumerate(_images(folder)):
        cfa = noisy_mosaic(im, sigma, i)
        mi = m
        if pick:
            mi = pick_model(cfa, "RGGB", denoise or "off", colours or "natural", where=name, quality=quality)
            if picks is not None:
                key = f"{Path(folder).name} sigma {sigma:g}"
                picks.setdefault(key, {})
                picks[key][mi.name] = picks[key].get(mi.name, 0) + 1
        out8 = to_uint8(demosaick(cfa, "RGGB", model=mi))
        scores[name] = (cpsnr(out8, im, 10), cpsnr(out8, im, 0))
    return scores

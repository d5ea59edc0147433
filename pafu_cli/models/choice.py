"""The demosaick model choice policy, in one place: the noise estimate and the
denoising family (``--denoise``), the colourfulness statistic and the vivid
twins (``--colours``), and :func:`choose_model`, which combines them for a file."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pafu_cli.errors import ModelError
from pafu_cli.filters.pafu.model import PafuModel
from pafu_cli.models import registry
from pafu_cli.models.format import load_model
from pafu_cli.raw.render import colour_index, colour_plane

if TYPE_CHECKING:
    from pafu_cli.jobs.demosaick import DemosaickOptions

log = logging.getLogger("pafu")


# Joint denoise + demosaick: a family of shipped demosaick models, each made
# for one noise level (their ``noise_sigma``), named with this prefix; the
# noise-free default joins the family at CLEAN_NOISE_LEVEL. A picture's noise
# estimate (noise_level) is multiplied by NOISE_PICK_SCALE before the
# nearest level is taken: photographs read above their true noise (texture in
# the flattest tiles, the division by the bright end), and a member made for
# less noise loses less on a noisier picture than the other way round. The
# scale was chosen on the validation split of T91 + BSD200 over sigma 0..15
# (tools/calibrate/noise_pick.py), never on the test sets.
DENOISE_PREFIX = "demosaick_denoise"


CLEAN_NOISE_LEVEL = 2.0 / 255


NOISE_PICK_SCALE = 0.68


# Colours: besides the noise-free default, a bank trained for saturated colours,
# and likewise for denoising members: the "vivid twin" of a model (vivid_twin:
# demosaick_denoise_s5 -> demosaick_vivid_denoise_s5). ``--colours auto`` takes
# the twin, where one is installed, for a picture whose mosaic colourfulness
# (mosaic_colourfulness) is above VIVID_COLOURFULNESS, a threshold chosen
# on validation images (tools/calibrate/colour_pick.py), never on the test sets.
VIVID_MODEL = "demosaick_vivid"


VIVID_COLOURFULNESS = 0.5


COLOUR_CHOICES = ("auto", "natural", "vivid")


def denoise_family() -> list:
    """``(noise_sigma, name)`` of the shipped denoising demosaick models, by level."""
    return list(_family_in(str(registry.models_dir())))


@functools.lru_cache(maxsize=4)
def _family_in(folder: str) -> tuple:
    fam = []
    for p in sorted(Path(folder).glob(f"{DENOISE_PREFIX}*.npz")):
        if p.stem.endswith(registry.QUALITY_SUFFIX["high"]):  # a member's high form, not a member
            continue
        m = load_model(p)
        if m.task == "demosaick" and m.noise_sigma > 0:
            fam.append((m.noise_sigma, p.stem))
    return tuple(sorted(fam))


def pick_denoise_model(noise: float, allow_clean: bool = True, scale: float = None) -> PafuModel:
    """The family member whose noise level is nearest (in ratio) to ``noise * scale``.

    ``noise`` is a sigma in 0..1 units (noise_level); ``scale``
    defaults to :data:`NOISE_PICK_SCALE`. With ``allow_clean`` the
    noise-free default competes at :data:`CLEAN_NOISE_LEVEL`. Raises
    ModelError when no member is installed.
    """
    fam = denoise_family()
    if not fam:
        raise ModelError(f"no denoising model installed ({DENOISE_PREFIX}_*.npz in {registry.models_dir()})")
    if allow_clean:
        fam = [(CLEAN_NOISE_LEVEL, registry.DEFAULT_MODELS[("demosaick", 1)])] + fam
    level = max(float(noise) * (NOISE_PICK_SCALE if scale is None else scale), 1e-4)
    # Nearest level; near-ties (float32-stored levels) go to the earlier entry, so the
    # noise-free model beats a member made for the same level.
    _, (_, name) = min(enumerate(fam), key=lambda t: (round(abs(np.log(t[1][0] / level)), 6), t[0]))
    return registry.resolve_model(name, "demosaick")


def vivid_twin(name: str) -> str:
    """The name of a shipped demosaick model's vivid twin (trained for saturated
    colours): ``demosaick`` -> ``demosaick_vivid``, ``demosaick_denoise_s5`` ->
    ``demosaick_vivid_denoise_s5``."""
    base = registry.DEFAULT_MODELS[("demosaick", 1)]
    if not name.startswith(base):
        raise ValueError(f"not a shipped demosaick model name: {name!r}")
    return VIVID_MODEL + name[len(base) :]


def pick_colour_model(colourfulness: float, colours: str = "auto", base: str = None) -> PafuModel:
    """The demosaick model for a picture of this colourfulness.

    ``base``: the shipped model the noise level calls for (default: the
    noise-free ``demosaick``). ``colours`` "natural": ``base``; "vivid": its
    vivid twin (:func:`vivid_twin`) where installed, else ``base`` (for the
    noise-free default the twin, :data:`VIVID_MODEL`, must be installed);
    "auto": the twin when ``colourfulness`` is above
    :data:`VIVID_COLOURFULNESS` and it is installed, else ``base``.
    """
    if colours not in COLOUR_CHOICES:
        raise ValueError(f"colours must be one of {COLOUR_CHOICES}, got {colours!r}")
    base = base or registry.DEFAULT_MODELS[("demosaick", 1)]
    twin = vivid_twin(base)
    installed = (registry.models_dir() / f"{twin}.npz").exists()
    if (
        colours == "vivid"
    ):  # asked for: a missing noise-free twin is an error (registry.resolve_model says so)
        vivid = installed or twin == VIVID_MODEL
    else:
        vivid = colours == "auto" and installed and colourfulness > VIVID_COLOURFULNESS
    return registry.resolve_model(twin if vivid else base, "demosaick")


def high_form(m: PafuModel) -> PafuModel:
    """The shipped ``pafunet`` form of shipped demosaick model ``m`` (its name +
    ``_high``) where installed, else ``m``; the noise-free default's must be
    installed (a one-line ModelError names what is)."""
    if m.name == registry.DEFAULT_MODELS[("demosaick", 1)]:
        return registry.resolve_model(registry.quality_model("demosaick", 1, "high"), "demosaick")
    name = m.name + registry.QUALITY_SUFFIX["high"]
    if (registry.models_dir() / f"{name}.npz").exists():
        return registry.resolve_model(name, "demosaick")
    return m


# Denoise "auto": ISO at or above which a file always gets a denoising model.
DENOISE_ISO = 3200


def choose_model(where, pattern, iso, opts: DemosaickOptions, scaled_sample, linear: bool):
    """The demosaick model for one file: ``--model``, else the one
    :func:`pick_model` picks by ``--denoise`` and ``--colours``."""
    if opts.model is not None:
        m = registry.resolve_model(opts.model, "demosaick")
        log.info("%s: model %s", where, m.name)
        return m
    return pick_model(
        scaled_sample,
        pattern,
        opts.denoise,
        opts.colours,
        iso=iso,
        linear=linear,
        where=where,
        quality=opts.quality,
    )


def pick_model(
    scaled_sample,
    pattern: str,
    denoise: str,
    colours: str,
    iso=None,
    linear: bool = False,
    where="",
    quality: str = "standard",
) -> PafuModel:
    """The demosaick model for a [0, 1] mosaic by ``--denoise`` and, where that
    leaves the noise-free model, by ``--colours`` (the policy; ``where`` names the
    picture in the log).

    ``denoise`` "off": the noise-free model. "on": the denoising family member
    nearest to the estimated noise level. "auto": the family member nearest
    to the estimate, the noise-free model included (it stands for clean
    pictures); ``iso`` >= :data:`DENOISE_ISO` rules the noise-free model out.
    The model so chosen, or its vivid twin (:func:`vivid_twin`, where
    installed) for colourful pictures with ``colours`` "auto" (or always with
    "vivid"). ``linear``: the mosaic is linear RAW data
    (:func:`mosaic_colourfulness`). ``quality`` "high": the pick's ``pafunet``
    form (:func:`high_form`: ``demosaick_high``, ``demosaick_denoise_s5_high``)
    where one is installed; the vivid twins have none and stay.
    """
    base = None  # the model the noise level calls for (None: the noise-free default)
    if denoise != "off":
        noise = noise_level(scaled_sample)
        iso_txt = f"ISO {iso:.0f}" if iso else "ISO unknown"
        high_iso = iso is not None and iso >= DENOISE_ISO
        try:
            m = pick_denoise_model(noise, allow_clean=denoise == "auto" and not high_iso)
        except ModelError as e:
            if denoise == "on":
                raise
            log.warning("%s: %s; using the noise-free model", where, e)
            m = None
        denoising = m is not None and m.noise_sigma > 0
        log.info(
            "%s: denoise %s (%s, noise estimate %.4f = %.1f/255): %s",
            where,
            denoise,
            iso_txt,
            noise,
            noise * 255,
            f"model {m.name}" if denoising else "noise-free",
        )
        if denoising:
            base = m.name
    colourful = mosaic_colourfulness(scaled_sample, pattern, linear=linear)
    m = pick_colour_model(colourful, colours, base)
    if quality == "high":
        m = high_form(m)
    log.info(
        "%s: colours %s (colourfulness %.3f, vivid above %.2f): model %s",
        where,
        colours,
        colourful,
        VIVID_COLOURFULNESS,
        m.name,
    )
    return m


# Noise estimate (noise_level): tile size, the percentile of the tiles' residual
# standard deviations that is kept, and that percentile's value for pure unit
# Gaussian noise (tiles of 36 correlated residuals; measured by simulation, 200
# images of 600 x 600, standard error 0.0005; tests/test_render.py re-measures it).
NOISE_TILE = 6


NOISE_PERCENTILE = 0.5


NOISE_TILE_BIAS = 0.545


def residual_tile_sd(plane: np.ndarray, block: int):
    """Standard deviation of Immerkaer's Laplacian residual per ``block``-square
    tile of one colour plane, and which tiles have no sample clipped at black
    (0) or near white (>= 0.98): two (rows, cols) arrays."""
    g = plane.astype(np.float64)
    r = (
        g[:-2, :-2]
        - 2 * g[:-2, 1:-1]
        + g[:-2, 2:]
        - 2 * g[1:-1, :-2]
        + 4 * g[1:-1, 1:-1]
        - 2 * g[1:-1, 2:]
        + g[2:, :-2]
        - 2 * g[2:, 1:-1]
        + g[2:, 2:]
    ) / 6.0
    hb, wb = r.shape[0] // block, r.shape[1] // block

    def tiles(a):
        return (
            a[: hb * block, : wb * block]
            .reshape(hb, block, wb, block)
            .transpose(0, 2, 1, 3)
            .reshape(hb, wb, -1)
        )

    level = tiles(g[1:-1, 1:-1])
    return tiles(r).std(axis=2), (level.min(axis=2) > 0) & (level.max(axis=2) < 0.98)


def noise_level(scaled: np.ndarray) -> float:
    """Robust sigma of the noise of a [0, 1] mosaic, relative to its bright end.

    On each of the four colour planes, Immerkaer's Laplacian-difference filter
    ``[1 -2 1; -2 4 -2; 1 -2 1] / 6`` cancels local planes and leaves i.i.d.
    noise with its sigma; the standard deviation of that residual is taken in
    :data:`NOISE_TILE`-square tiles and a low percentile of them (the flattest
    tiles, where texture adds least; small tiles find flat spots even in
    strongly textured pictures) is divided by that percentile's value for pure
    noise, so a flat noisy field reads its own sigma. Tiles with a sample
    clipped at black (0) or near white are skipped (unless no tile is left, as
    in a very dark frame). The four planes' estimates are averaged and divided
    by the 99th percentile of the mosaic, so a dark picture that
    auto-brightness will lift counts as noisier. Photographs read higher than
    their noise (texture, and the division): on the validation photos of
    T91 + BSD200 with Gaussian noise of sigma 0/5/10 (0..255 units) the median
    estimate is 1.4/6.8/12.4; :data:`pafu_cli.models.choice.NOISE_PICK_SCALE` accounts
    for that when a denoising model is picked.
    """
    est = []
    for plane in (scaled[y::2, x::2] for y in (0, 1) for x in (0, 1)):
        if min(plane.shape) < NOISE_TILE + 2:
            continue
        sd, ok = residual_tile_sd(plane, NOISE_TILE)
        if not ok.any():  # e.g. a very dark frame, half clipped at black: use every tile
            ok[...] = True
        if sd.size:
            est.append(np.percentile(sd[ok], NOISE_PERCENTILE))
    if not est:
        return 0.0
    sigma = float(np.mean(est)) / NOISE_TILE_BIAS
    ref = max(float(np.percentile(scaled[::4, ::4], 99)), 1 / 64)
    return sigma / ref


def mosaic_colourfulness(scaled: np.ndarray, pattern: str, linear: bool = False, dark: float = 0.02) -> float:
    """Mean saturation ``(max - min) / max`` of the RGB quads of a [0, 1] mosaic.

    Each 2x2 quad gives one (R, mean G, B) triple; quads whose brightest
    channel is below ``dark`` (noise-dominated) or clipped (>= 0.98) are
    skipped. Grey scenes score near 0, saturated McMaster-like ones above 0.5
    (Kodak24 medians 0.33, McMaster 0.59). The scale is that of gamma-encoded
    pictures, on which the models were trained: for a ``linear`` (RAW) mosaic
    the ratio min/max is taken to the power 1/2.2 and "dark" is relative to
    the 99th percentile of the quads' maxima.
    ``--colours auto`` compares the result with
    :data:`pafu_cli.models.choice.VIVID_COLOURFULNESS`.
    """
    tile = colour_index(pattern)
    h, w = scaled.shape[0] // 2 * 2, scaled.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    p = [colour_plane(scaled[:h, :w], tile, c).astype(np.float32) for c in range(4)]
    rgb = np.stack([p[0], 0.5 * (p[1] + p[3]), p[2]])
    mx, mn = rgb.max(axis=0), rgb.min(axis=0)
    ok = (mx > 0) & (mx < 0.98)
    if linear:  # (max - min) / max is scale-free: only the encoding and "dark" change
        ok &= mx >= np.float32(np.percentile(mx, 99) * dark**2.2)
        ratio = (np.maximum(mn[ok], 0) / mx[ok]) ** np.float32(1 / 2.2)
    else:
        ok &= mx >= dark
        ratio = np.maximum(mn[ok], 0) / mx[ok]
    return float(np.mean(1 - ratio)) if ratio.size else 0.0

"""Evaluation protocols for guided (joint) upsampling of depth maps and optical flow.

Four published protocols, as written down in ``shared/data/depth/SOURCES.md``
("Protocols"); they differ by up to 2x on the same images, so a figure is
meaningless without the name of its protocol:

``"bicubic"`` (P1, DCTNet / FDSR / JIIF)
    Middlebury30, Lu6 (8-bit levels) and NYU3 (cm, 6-pixel border). The target
    is cropped to a multiple of s (size taken from the guide), shrunk with
    Pillow's antialiased float bicubic, normalised by the *HR* min/max; the
    output is clamped to [0, 1] and denormalised; mean of per-image RMSE.
``"decimation"`` (P2, pacnet / DJIF)
    NYU3 in metres, LR = ``T[(s-1)//2::s, (s-1)//2::s]``, normalised by the *LR*
    min/max; RMSE in cm on ``[6:-6, 6:-6]``.
``"sintel"`` (P2-flow, pacnet)
    Sintel flows: padded by resizing to a multiple of s, LR = anti-aliased
    bilinear resize (:func:`sk_resize_bilinear_aa`), per-channel LR min/max
    normalisation, the method runs at LR size x s and its output is resized back
    bilinearly; mean end-point error in pixels, no border.
``"park"`` (P3, Park et al. / Barron & Poole noisy set)
    The given noisy 8-bit LR maps, output 1376 x 1088, RMSE in levels over all
    pixels, per-scale mean and geometric mean of the 12 (scene, scale) values.

A *method* is a callable ``method(lowres, guide, out_shape) -> ndarray``:
``lowres`` is float32 (h, w) or (h, w, C) in the units the protocol feeds
(P1: the [0, 1]-normalised LR; P2 / P2-flow: the LR-min/max-normalised LR;
P3: 8-bit levels as float32), ``guide`` the uint8 (H, W, 3) RGB guide (cropped
or resized as the protocol says), ``out_shape`` the (H, W) to produce. It
returns float (H, W[, C]) in the units of ``lowres``.

:func:`evaluate` runs a protocol on the data folder (``shared/data/depth``);
:func:`bicubic_method`, :func:`bilinear_method` and :func:`matlab_bicubic_method`
are the baselines of P1, P2 / P2-flow and P3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pafu_cli.errors import InputError
from pafu_cli.io.images import read_image

__all__ = [
    "PROTOCOLS",
    "SCALES",
    "bicubic_method",
    "bilinear_method",
    "evaluate",
    "image_ids",
    "matlab_bicubic_method",
    "pillow_bicubic",
    "sets_for",
    "sk_resize_bilinear_aa",
    "torch_bilinear",
    "unit",
]

Method = Callable[[np.ndarray, np.ndarray, tuple], np.ndarray]

PROTOCOLS = ("bicubic", "decimation", "park", "sintel")
SCALES = {"bicubic": (4, 8, 16), "decimation": (4, 8, 16), "park": (2, 4, 8, 16), "sintel": (4, 8, 16)}
_SETS = {
    "bicubic": ("Middlebury30", "Lu6", "NYU3"),
    "decimation": ("NYU3",),
    "park": ("ParkBarron",),
    "sintel": ("Sintel",),
}
_UNITS = {"Middlebury30": "levels", "Lu6": "levels", "NYU3": "cm", "ParkBarron": "levels", "Sintel": "px EPE"}
NYU_BORDER = 6  # pixels left out on each side when scoring NYU (P1 and P2)
PARK_SHAPE = (1088, 1376)  # (H, W) of the Park-Barron outputs
UNKNOWN_FLOW = 1e7  # pacnet's th_epe: GT flow above this is unknown (error 0 there)


def sets_for(protocol: str) -> tuple[str, ...]:
    """The data sets (folder names under ``shared/data/depth``) of a protocol."""
    _check_protocol(protocol)
    return _SETS[protocol]


def unit(set_name: str) -> str:
    """The unit of a set's scores: ``"levels"`` (8-bit), ``"cm"`` (NYU3) or ``"px EPE"`` (Sintel)."""
    if set_name not in _UNITS:
        raise ValueError(f"unknown set {set_name!r} ({', '.join(_UNITS)})")
    return _UNITS[set_name]


def _check_protocol(protocol):
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


# ---------------------------------------------------------------------------
# Resamplers


def pillow_bicubic(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pillow's bicubic resize of a float map (PIL mode ``'F'``): the P1 resampler.

    Pillow's convolution resampler widens the kernel by the shrink factor, so a
    reduction is antialiased; ``reducing_gap`` stays None, as in DCTNet.

    Parameters
    ----------
    a : ndarray
        (H, W) or (H, W, C) map; computed in float32, channel by channel.
    w, h : int
        Output width and height (Pillow's order).

    Returns
    -------
    ndarray
        float32 (h, w) or (h, w, C).
    """
    from PIL import Image

    bicubic = getattr(Image, "Resampling", Image).BICUBIC
    a = np.asarray(a, np.float32)
    if a.ndim == 3:
        return np.stack([pillow_bicubic(a[..., c], w, h) for c in range(a.shape[2])], axis=2)
    im = Image.fromarray(np.ascontiguousarray(a))
    return np.asarray(im.resize((int(w), int(h)), bicubic), np.float32)


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices folded into 0..n-1 by whole-sample mirroring (d c b | a b c d | c b a)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * n - 2
    idx = np.mod(idx, period)
    return np.where(idx > n - 1, period - idx, idx)


def _gaussian_matrix(n: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """(n, n) matrix of scipy.ndimage.gaussian_filter1d with mode 'mirror'."""
    if sigma <= 1e-15:  # scipy skips such axes
        return np.eye(n)
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    rows = np.repeat(np.arange(n), x.size)
    cols = _mirror((np.arange(n)[:, None] + x[None, :]).ravel(), n)
    g = np.zeros((n, n))
    np.add.at(g, (rows, cols), np.tile(k, n))
    return g


def _linear_matrix(n: int, m: int, mirror: bool) -> np.ndarray:
    """(m, n) matrix of linear interpolation from n to m samples with pixel-centre
    mapping x = (o + 0.5) n / m - 0.5; outside [0, n-1] the coordinate is mirrored
    (``mirror``, scipy's 'mirror') or clamped (torch, align_corners=False)."""
    x = (np.arange(m) + 0.5) * (n / m) - 0.5
    if n == 1:
        x = np.zeros(m)
    elif mirror:
        x = np.abs(x)
        x = np.where(x > n - 1, 2 * (n - 1) - x, x)
    else:
        x = np.clip(x, 0, n - 1)
    i0 = np.minimum(np.floor(x).astype(np.intp), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    f = x - i0
    mat = np.zeros((m, n))
    np.add.at(mat, (np.arange(m), i0), 1 - f)
    np.add.at(mat, (np.arange(m), i1), f)
    return mat


def _keys_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) matrix of Keys bicubic (a = -0.5) interpolation from n to m >= n samples,
    pixel-centre mapping, edge replicate (MATLAB ``imresize`` style, no antialiasing)."""
    x = (np.arange(m) + 0.5) * (n / m) - 0.5
    j = np.floor(x)[:, None] + np.arange(-1, 3)[None, :]
    t = np.abs(x[:, None] - j)
    k = np.where(
        t <= 1,
        1.5 * t**3 - 2.5 * t**2 + 1,
        np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0),
    )
    mat = np.zeros((m, n))
    np.add.at(mat, (np.repeat(np.arange(m), 4), np.clip(j, 0, n - 1).astype(np.intp).ravel()), k.ravel())
    return mat


def _separable(a: np.ndarray, my: np.ndarray, mx: np.ndarray) -> np.ndarray:
    """``my @ a @ mx.T`` on the first two axes of a (H, W[, C]) array, in float64."""
    a = np.asarray(a, np.float64)
    rows = np.tensordot(my, a, axes=(1, 0))
    return np.moveaxis(np.tensordot(mx, rows, axes=(1, 1)), 0, 1)


def sk_resize_bilinear_aa(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``skimage.transform.resize(a, (out_h, out_w), order=1, mode='reflect',
    anti_aliasing=True, preserve_range=True)`` in NumPy (pacnet's ``get_lowres``).

    Along each axis that shrinks by a factor f = n / m > 1, a Gaussian of sigma
    (f - 1) / 2 (truncated at 4 sigma) is applied first; then linear
    interpolation with pixel-centre mapping. Both use scipy.ndimage's 'mirror'
    border (skimage's 'reflect'). skimage's default ``clip=True`` is a no-op here:
    the result is a convex combination of input values.

    Parameters
    ----------
    a : ndarray
        (H, W) or (H, W, C); channels are resized independently.
    out_h, out_w : int
        Output size.

    Returns
    -------
    ndarray
        (out_h, out_w[, C]), float32 for float16/float32 input, else float64.
    """
    a = np.asarray(a)
    n_h, n_w = a.shape[:2]
    mats = []
    for n, m in ((n_h, int(out_h)), (n_w, int(out_w))):
        sigma = max(0.0, (n / m - 1) / 2)
        mats.append(_linear_matrix(n, m, mirror=True) @ _gaussian_matrix(n, sigma))
    out = _separable(a, *mats)
    return out.astype(np.float32) if a.dtype in (np.float16, np.float32) else out


def torch_bilinear(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``torch.nn.functional.interpolate(size=(out_h, out_w), mode='bilinear',
    align_corners=False)`` (no antialiasing) of a (H, W[, C]) array, in float64."""
    a = np.asarray(a)
    return _separable(
        a, _linear_matrix(a.shape[0], int(out_h), mirror=False), _linear_matrix(a.shape[1], int(out_w), False)
    )


# ---------------------------------------------------------------------------
# Baseline methods


def bicubic_method(lowres: np.ndarray, guide: np.ndarray, out_shape: tuple) -> np.ndarray:
    """P1 baseline: Pillow bicubic up of the LR (the guide is ignored)."""
    return pillow_bicubic(lowres, out_shape[1], out_shape[0])


def bilinear_method(lowres: np.ndarray, guide: np.ndarray, out_shape: tuple) -> np.ndarray:
    """P2 / P2-flow baseline: torch bilinear, ``align_corners=False`` (the guide is ignored)."""
    return torch_bilinear(lowres, out_shape[0], out_shape[1])


def matlab_bicubic_method(lowres: np.ndarray, guide: np.ndarray, out_shape: tuple) -> np.ndarray:
    """P3 baseline: MATLAB-style bicubic upsampling (Keys a = -0.5, pixel-centre
    aligned, edge replicate; the guide is ignored). ``round(256 * this)``
    reproduces the 16-bit bicubic outputs shipped with domain_transform_solver
    to +-1 LSB."""
    h, w = lowres.shape[:2]
    if out_shape[0] < h or out_shape[1] < w:
        raise ValueError(f"matlab_bicubic_method only enlarges: {lowres.shape[:2]} -> {tuple(out_shape)}")
    return _separable(lowres, _keys_matrix(h, out_shape[0]), _keys_matrix(w, out_shape[1]))


# ---------------------------------------------------------------------------
# Data


def image_ids(data_dir, set_name: str) -> list[str]:
    """Sorted ids of a set: ``<id>_depth.*`` files (``<id>_flow.npz`` for Sintel,
    the scene names for ParkBarron)."""
    folder = Path(data_dir) / set_name
    if not folder.is_dir():
        raise InputError(f"{folder}: data set folder not found")
    suffix = "_flow" if set_name == "Sintel" else "_depth"
    ids = sorted({p.name.split(suffix + ".")[0] for p in folder.glob(f"*{suffix}.*")})
    if not ids:
        raise InputError(f"{folder}: no *{suffix}.* files")
    return ids


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise InputError(f"{folder}: expected one {pattern}, found {len(found)}")
    return found[0]


def _target(folder: Path, image_id: str) -> np.ndarray:
    """The HR target as float32: levels (PNG) or metres (NYU ``.npz``, key ``depth``)."""
    path = _one(folder, f"{image_id}_depth.*")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["depth"], np.float32)
    d = read_image(path)
    if d.ndim != 2:
        raise InputError(f"{path}: expected a one-channel depth map, got shape {d.shape}")
    return d.astype(np.float32)


def _guide(folder: Path, image_id: str) -> np.ndarray:
    """The uint8 (H, W, 3) RGB guide ``<id>_rgb.*``."""
    path = _one(folder, f"{image_id}_rgb.*")
    g = read_image(path)
    if g.dtype != np.uint8:
        raise InputError(f"{path}: the guide must be 8-bit, got {g.dtype}")
    if g.ndim == 2:
        g = np.repeat(g[..., None], 3, axis=2)
    return np.ascontiguousarray(g[..., :3])


def _flow(folder: Path, image_id: str) -> np.ndarray:
    with np.load(folder / f"{image_id}_flow.npz", allow_pickle=False) as z:
        return np.asarray(z["flow"], np.float64)


# ---------------------------------------------------------------------------
# Protocols, one image and one scale


def _run(method, lowres, guide, out_shape):
    """Call ``method`` and check the shape of what it returns."""
    # copies: a method that writes into its inputs cannot change the next scale's
    out = np.asarray(method(np.array(lowres, np.float32), np.array(guide), tuple(out_shape)))
    want = tuple(out_shape) + lowres.shape[2:]
    if out.shape != want:
        raise ValueError(f"method returned shape {out.shape}, expected {want}")
    return out.astype(np.float64)


def _rmse(pred, gt) -> float:
    """sqrt(mean over pixels of the squared error summed over channels), float64."""
    err = (np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2
    if err.ndim == 3:
        err = err.sum(axis=2)
    return float(np.sqrt(np.mean(err)))


def _p1(method, d, guide, s, cm):
    """P1 (DCTNet bicubic) RMSE of one image at scale s: levels, or cm with ``cm``."""
    h, w = guide.shape[:2]
    h, w = h - h % s, w - w % s
    if d.shape[0] < h or d.shape[1] < w:
        raise InputError(f"depth {d.shape} is smaller than its guide {guide.shape[:2]}")
    d, guide = d[:h, :w], guide[:h, :w]
    lr = pillow_bicubic(d, w // s, h // s)
    lo, hi = d.min(), d.max()
    if hi == lo:
        raise InputError("flat depth map: the P1 normalisation divides by max - min = 0")
    out = _run(method, (lr - lo) / (hi - lo), guide, (h, w))
    gt = d * np.float32(100) if cm else d
    g0, g1 = float(gt.min()), float(gt.max())
    pred = np.clip(out, 0, 1) * (g1 - g0) + g0
    if cm:
        b = NYU_BORDER
        return _rmse(pred[b:-b, b:-b], gt[b:-b, b:-b])
    return _rmse(np.clip(pred, 0, 255), np.clip(gt, 0, 255))


def _lr_range(lr):
    """Per-channel LR min and max (pacnet); a flat channel gets min - 0.5, max + 0.5."""
    lo = lr.min(axis=(0, 1)).astype(np.float64)
    hi = lr.max(axis=(0, 1)).astype(np.float64)
    flat = hi == lo
    return lo - 0.5 * flat, hi + 0.5 * flat


def _pacnet(method, t, guide, s, bilinear_lr):
    """pacnet's pipeline for one target and scale: prediction at the size of ``t``,
    in its units. ``bilinear_lr``: LR by anti-aliased bilinear resize (Sintel),
    else by centre decimation (NYU)."""
    h0, w0 = t.shape[:2]
    h, w = -(-h0 // s), -(-w0 // s)
    padded = t if (h * s, w * s) == (h0, w0) else sk_resize_bilinear_aa(t, h * s, w * s)
    if bilinear_lr:
        lr = sk_resize_bilinear_aa(padded, h, w)
    else:
        c = (s - 1) // 2
        lr = padded[c::s, c::s]
    lo, hi = _lr_range(lr)
    if guide.shape[:2] != (h * s, w * s):
        # pacnet resizes the float guide; ours stays 8-bit (rounded), as methods expect.
        guide = np.clip(np.round(torch_bilinear(guide, h * s, w * s)), 0, 255).astype(np.uint8)
    out = _run(method, (lr - lo) / (hi - lo), guide, (h * s, w * s))
    if out.shape[:2] != (h0, w0):
        out = torch_bilinear(out, h0, w0)
    return out * (hi - lo) + lo


def _p2(method, d, guide, s):
    """P2 (pacnet decimation) RMSE in cm of one NYU map (metres) at scale s."""
    pred = _pacnet(method, d, guide, s, bilinear_lr=False)
    b = NYU_BORDER
    return 100 * _rmse(pred[b:-b, b:-b], d[b:-b, b:-b])


def _p2_flow(method, flow, guide, s):
    """P2-flow (pacnet Sintel) mean end-point error in pixels of one flow at scale s."""
    pred = _pacnet(method, flow, guide, s, bilinear_lr=True)
    known = np.all(np.abs(flow) <= UNKNOWN_FLOW, axis=2, keepdims=True)
    err = np.where(known, pred - flow, 0.0)
    return float(np.mean(np.sqrt(np.sum(err**2, axis=2))))


def _p3(method, folder, scene, gt, guide, s):
    """P3 (Park-Barron noisy) RMSE in levels of one scene at scale s."""
    lr = read_image(folder / f"{scene}_lr_x{s}.png")
    if lr.ndim != 2:
        raise InputError(f"{folder / f'{scene}_lr_x{s}.png'}: expected a one-channel map")
    return _rmse(_run(method, lr.astype(np.float32), guide, gt.shape), gt)


# ---------------------------------------------------------------------------
# Whole tables


def _geomean(values) -> float:
    """Geometric mean; 0 when any value is 0 (a perfect method), without a log(0) warning."""
    v = np.asarray(values, np.float64)
    return 0.0 if np.any(v <= 0) else float(math.exp(np.log(v).mean()))


def _set_scores(method, folder: Path, protocol, set_name, ids, scales, progress):
    """{id: [score per scale]} of one set."""
    per_image = {}
    for i in ids:
        if protocol == "sintel":
            target, guide = _flow(folder, i), _guide(folder, i)
        else:
            target, guide = _target(folder, i), _guide(folder, i)
        if protocol == "bicubic":
            row = [_p1(method, target, guide, s, cm=_UNITS[set_name] == "cm") for s in scales]
        elif protocol == "decimation":
            row = [_p2(method, target, guide, s) for s in scales]
        elif protocol == "sintel":
            row = [_p2_flow(method, target, guide, s) for s in scales]
        else:
            if target.shape != PARK_SHAPE:
                raise InputError(f"{folder}/{i}_depth.png: expected {PARK_SHAPE}, got {target.shape}")
            row = [_p3(method, folder, i, target, guide, s) for s in scales]
        per_image[i] = row
        if progress is not None:
            vals = " ".join(f"x{s} {v:.3f}" for s, v in zip(scales, row))
            progress(f"{protocol} {set_name} {i}: {vals} {_UNITS[set_name]}")
    return per_image


def evaluate(
    method: Method,
    data_dir,
    protocol: str,
    sets: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
    progress: Callable[[str], object] | None = None,
    *,
    ids: Sequence[str] | None = None,
) -> dict:
    """Score a guided-upsampling method with one protocol.

    Parameters
    ----------
    method : callable
        ``method(lowres, guide, out_shape) -> ndarray``, see the module docstring.
    data_dir : path
        The folder holding the sets (``shared/data/depth``).
    protocol : str
        One of :data:`PROTOCOLS`.
    sets : sequence of str, optional
        A subset of :func:`sets_for` ``(protocol)``; default all of them.
    scales : sequence of int, optional
        A subset of ``SCALES[protocol]``; default all of them.
    progress : callable, optional
        Called with a one-line message after each image.
    ids : sequence of str, optional
        Only these image ids (scene names for ParkBarron); each must exist in
        every set evaluated.

    Returns
    -------
    dict
        ``{"protocol", "unit", "sets": {set: {"unit", "scales", "per_image":
        {id: [score per scale]}, "mean": [mean per scale]}}}``; scores are RMSE
        (levels, or cm for NYU3) or mean EPE (px, Sintel). For ``"park"`` the set
        and the top level also hold ``"geomean"``, the geometric mean of all
        (scene, scale) values (of 12 with the defaults). The top-level ``"unit"``
        names the unit of each set when they differ (P1: levels and cm).

    Raises
    ------
    ValueError
        Unknown protocol, set or scale; a method output of the wrong shape.
    InputError
        Missing or malformed data.
    """
    _check_protocol(protocol)
    sets = tuple(sets) if sets is not None else _SETS[protocol]
    scales = tuple(int(s) for s in scales) if scales is not None else SCALES[protocol]
    bad = [x for x in sets if x not in _SETS[protocol]]
    if bad or not sets:
        raise ValueError(f"sets {bad or '()'} not in protocol {protocol!r} ({', '.join(_SETS[protocol])})")
    bad = [s for s in scales if s not in SCALES[protocol]]
    if bad or not scales:
        raise ValueError(f"scales {bad or '()'} not in protocol {protocol!r} {SCALES[protocol]}")
    data_dir = Path(data_dir)
    result = {"protocol": protocol, "sets": {}}
    for name in sets:
        folder = data_dir / name
        known = image_ids(data_dir, name)
        chosen = known if ids is None else list(ids)
        missing = [i for i in chosen if i not in known]
        if missing or not chosen:
            raise InputError(f"{folder}: no image {missing or '()'}")
        per_image = _set_scores(method, folder, protocol, name, chosen, scales, progress)
        table = np.array(list(per_image.values()))
        entry = {
            "unit": _UNITS[name],
            "scales": list(scales),
            "per_image": per_image,
            "mean": [float(v) for v in table.mean(axis=0)],
        }
        if protocol == "park":
            entry["geomean"] = _geomean(table)
            result["geomean"] = entry["geomean"]
        result["sets"][name] = entry
    units = {name: _UNITS[name] for name in sets}
    if len(set(units.values())) == 1:
        result["unit"] = units[sets[0]]
    else:
        result["unit"] = ", ".join(f"{u} ({n})" for n, u in units.items())
    return result

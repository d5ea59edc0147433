"""Synthetic RGB-D pairs made from ordinary photographs (NumPy only).

No real RGB-D training data is available to pafu: the depth folders of
``shared/data/depth`` are test sets. This module turns a training photograph
into a (guide, depth) pair whose depth behaves the way guided upsamplers must
cope with (``shared/PAC.md``, section 3):

- depth is piecewise smooth on segments of the photo, so most depth edges sit on
  colour edges, to the pixel: planes with random slants, and a few smooth curved
  surfaces (domes, cylinders, waves);
- trap (a), colour edges without depth edges: neighbouring segments are merged at
  random into one surface (across colour edges, too), and textured areas become
  one plane each;
- trap (b), depth edges without colour edges: a few surfaces are cut, through
  their most uniform part, by a straight, bent or circular line, and one side
  jumps in depth;
- surfaces are ordered like occluding objects: each differs from the neighbour it
  is placed against by a jump of 10..80 levels (now and then a crease with no
  jump), values in roughly 20..240.

With ``noise``, a ToF-like sensor reading is made as well (:func:`depth_noise`):
Gaussian noise whose standard deviation grows with depth, disparity quantisation
(coarser steps far away), 8-bit rounding, holes on the far side of depth edges and
dropouts anywhere (dark or glossy surfaces that return no signal).

Units and convention: depth is float32 in 8-bit "levels" (0..255, the range of
Middlebury's 8-bit disparity maps), read as depth, larger = farther. Guided
upsamplers are indifferent to the sign; only the noise model, the holes and the
ordering prior (lower in the picture = nearer) use it.

:func:`validation_set` is the fixed synthetic validation set built from the
validation split of the training photos (:func:`~pafu_cli.training.data.split_files`),
and :func:`degrade_bicubic` the low-resolution input of the P1 ("bicubic")
protocol (``shared/data/depth/SOURCES.md``).

Example
-------
>>> rng = np.random.default_rng(0)
>>> photo = np.zeros((64, 96, 3), np.uint8)
>>> photo[:, 48:] = (200, 40, 40)
>>> guide, depth = synth_rgbd(photo, rng)
>>> guide.shape, guide.dtype, depth.shape, depth.dtype
((64, 96, 3), dtype('uint8'), (64, 96), dtype('float32'))
>>> bool(20 <= depth.min() and depth.max() <= 240)
True
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from pafu_cli.evaluation.depth import pillow_bicubic
from pafu_cli.training.data import dihedral, list_images, read_rgb8, split_files

__all__ = [
    "DEPTH_RANGE",
    "DepthNoise",
    "degrade_bicubic",
    "depth_noise",
    "oversegment",
    "synth_rgbd",
    "validation_set",
]

DEPTH_RANGE = (20.0, 240.0)  # the clean depth is mapped into this range (levels)
JUMP_RANGE = (10.0, 80.0)  # depth jump between a surface and the one it is placed against
CUT_JUMP = (10.0, 60.0)  # depth jump across a cut through a uniform region (trap b)
SEGMENT = 20  # superpixel side, full-resolution pixels
COMPACTNESS = 10.0  # SLIC's m: Lab units per superpixel side
TEXTURE_GRADIENT = 6.0  # Lab gradient (sum |d| of L, a, b over 2 px) that counts as texture
TEXTURE_SHARE = 0.4  # a superpixel with this share of textured pixels is "textured"
EDGE_DE = 20.0  # a contact of more colour contrast (Lab) is a strong edge: the borders stay there
FLAT_DE = 5.0  # neighbouring superpixels whose contact has less colour contrast (Lab) always merge
TARGET = (6, 20)  # surfaces left by the merging, for a picture of REF_AREA
REF_AREA = 320 * 480  # the picture area the counts (surfaces, cuts) are tuned for

# ---------------------------------------------------------------------------
# Colour and over-segmentation


def _lab(rgb8: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB uint8 image, float32 (H, W, 3)."""
    c = rgb8.astype(np.float32) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32
    ) / np.array([[0.95047], [1.0], [1.08883]], np.float32)
    t = lin @ m.T
    eps = (6 / 29) ** 3
    f = np.where(t > eps, np.cbrt(np.maximum(t, eps)), t / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def _assign(col, yy, xx, cen, grid, cell, wsp):
    """Nearest of the 3 x 3 grid cells' centres for each pixel (SLIC's local search).

    ``col`` (N, 3) colours, ``yy``/``xx`` (N,) positions, ``cen`` (K, 5) centres
    [L, a, b, y, x] indexed by grid cell, ``wsp`` the weight of squared distance."""
    gy, gx = grid
    ci = np.minimum((yy / cell[0]).astype(np.int64), gy - 1)
    cj = np.minimum((xx / cell[1]).astype(np.int64), gx - 1)
    best = np.full(yy.shape, np.inf, np.float32)
    label = np.zeros(yy.shape, np.int64)
    for di in (-1, 0, 1):
        ri = np.clip(ci + di, 0, gy - 1) * gx
        for dj in (-1, 0, 1):
            k = ri + np.clip(cj + dj, 0, gx - 1)
            c = cen[k]
            d = (
                (col[:, 0] - c[:, 0]) ** 2
                + (col[:, 1] - c[:, 1]) ** 2
                + (col[:, 2] - c[:, 2]) ** 2
                + wsp * ((yy - c[:, 3]) ** 2 + (xx - c[:, 4]) ** 2)
            )
            better = d < best
            best = np.where(better, d, best)
            label = np.where(better, k, label)
    return label


def _update(cen, label, col, yy, xx):
    """Centres moved to the mean of their pixels (empty ones stay)."""
    k = cen.shape[0]
    n = np.bincount(label, minlength=k).astype(np.float32)
    has = n > 0
    for i, v in enumerate((col[:, 0], col[:, 1], col[:, 2], yy, xx)):
        s = np.bincount(label, weights=v, minlength=k)
        cen[has, i] = s[has] / n[has]
    return cen


def oversegment(
    rgb8: np.ndarray,
    segment: int = SEGMENT,
    compactness: float = COMPACTNESS,
    iters: int = 5,
    *,
    lab: np.ndarray | None = None,
) -> np.ndarray:
    """SLIC-like over-segmentation of a photo: k-means in (L*a*b*, y, x).

    Centres start on a grid of about ``segment`` px; each pixel compares only the
    centres of the 3 x 3 grid cells around it. ``iters`` rounds run on a
    block-averaged copy (cells of about 5 x 5 samples), then one more at full
    resolution, so that the borders follow the colour edges to the pixel.
    Labels are not forced to be connected.

    Parameters
    ----------
    rgb8 : ndarray
        uint8 (H, W, 3).
    segment : int
        Superpixel side in pixels.
    compactness : float
        Lab units that weigh as much as one superpixel side of distance.
    iters : int
        k-means rounds at low resolution.
    lab : ndarray, optional
        The photo's L*a*b* (float32 (H, W, 3)) when the caller has it already.

    Returns
    -------
    ndarray
        int64 (H, W) labels in 0..K-1 (K the number of grid cells; some may be unused).
    """
    h, w = rgb8.shape[:2]
    lab = _lab(rgb8) if lab is None else lab
    gy, gx = max(1, round(h / segment)), max(1, round(w / segment))
    cell = (h / gy, w / gx)
    wsp = np.float32((compactness**2) / (cell[0] * cell[1]))
    f = max(1, int(min(cell) // 5))
    hh, ww = h // f, w // f
    small = lab[: hh * f, : ww * f].reshape(hh, f, ww, f, 3).mean(axis=(1, 3))
    ys = ((np.arange(hh) + 0.5) * f - 0.5).astype(np.float32)
    xs = ((np.arange(ww) + 0.5) * f - 0.5).astype(np.float32)
    yy, xx = (a.ravel() for a in np.meshgrid(ys, xs, indexing="ij"))
    col = small.reshape(-1, 3)
    cy, cx = np.meshgrid((np.arange(gy) + 0.5) * cell[0] - 0.5, (np.arange(gx) + 0.5) * cell[1] - 0.5)
    cen = np.zeros((gy * gx, 5), np.float32)
    cen[:, 3], cen[:, 4] = cy.T.ravel(), cx.T.ravel()
    iy = np.clip(np.rint((cen[:, 3] + 0.5) / f - 0.5).astype(np.int64), 0, hh - 1)
    ix = np.clip(np.rint((cen[:, 4] + 0.5) / f - 0.5).astype(np.int64), 0, ww - 1)
    cen[:, :3] = small[iy, ix]
    for _ in range(iters):
        cen = _update(cen, _assign(col, yy, xx, cen, (gy, gx), cell, wsp), col, yy, xx)
    yy, xx = (a.ravel() for a in np.mgrid[0:h, 0:w].astype(np.float32))
    col = lab.reshape(-1, 3)
    label = _assign(col, yy, xx, cen, (gy, gx), cell, wsp)
    cen = _update(cen, label, col, yy, xx)
    return _assign(col, yy, xx, cen, (gy, gx), cell, wsp).reshape(h, w)


# ---------------------------------------------------------------------------
# Small image helpers


def _contrast(lab: np.ndarray):
    """Colour contrast across each 4-neighbour contact, Lab distance between the
    pixels one step beyond either side (so that a soft edge counts in full):
    horizontal contacts (H, W - 1) and vertical ones (H - 1, W)."""
    p = np.pad(lab, ((1, 1), (1, 1), (0, 0)), mode="edge")
    hor = np.sqrt(((p[1:-1, 3:] - p[1:-1, :-3]) ** 2).sum(axis=2))
    ver = np.sqrt(((p[3:, 1:-1] - p[:-3, 1:-1]) ** 2).sum(axis=2))
    return hor, ver


def _pairs(label: np.ndarray, contrast=None):
    """Unordered pairs of different labels that touch (4-neighbours): (a, b, length,
    mean y, mean x of the contact, mean ``contrast`` along it), a < b; ``contrast``
    as :func:`_contrast` returns it (the last item is None without it)."""
    h, w = label.shape
    a = np.concatenate([label[:, :-1].ravel(), label[:-1, :].ravel()])
    b = np.concatenate([label[:, 1:].ravel(), label[1:, :].ravel()])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    py = np.concatenate([yy[:, :-1].ravel(), yy[:-1, :].ravel() + 0.5])
    px = np.concatenate([xx[:, :-1].ravel() + 0.5, xx[:-1, :].ravel()])
    m = a != b
    a, b, py, px = a[m], b[m], py[m], px[m]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = int(label.max()) + 1
    keys, inv, counts = np.unique(lo * n + hi, return_inverse=True, return_counts=True)
    my = np.bincount(inv, weights=py) / counts
    mx = np.bincount(inv, weights=px) / counts
    mc = None
    if contrast is not None:
        c = np.concatenate([contrast[0].ravel(), contrast[1].ravel()])[m]
        mc = np.bincount(inv, weights=c) / counts
    return keys // n, keys % n, counts, my, mx, mc


def _shift_max(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Running maximum over 2r+1 samples along ``axis`` (edge values repeated)."""
    if r <= 0:
        return a
    pad = [(r, r) if i == axis else (0, 0) for i in range(a.ndim)]
    p = np.pad(a, pad, mode="edge")
    n = a.shape[axis]
    out = np.take(p, np.arange(0, n), axis=axis)
    for i in range(1, 2 * r + 1):
        out = np.maximum(out, np.take(p, np.arange(i, i + n), axis=axis))
    return out


def _max_filter(a: np.ndarray, r: int) -> np.ndarray:
    """Maximum over the (2r+1) x (2r+1) square (a dilation for bool arrays)."""
    return _shift_max(_shift_max(a, r, 0), r, 1)


def _majority(label: np.ndarray, radius: int = 1, passes: int = 2, fixed=None) -> np.ndarray:
    """(2 radius + 1)^2 majority filter applied to border pixels only (the centre's
    label wins ties), except where ``fixed`` (bool (H, W)) is set: removes specks
    and serrations of the segment borders."""
    h, w = label.shape
    r = radius
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    for _ in range(passes):
        edge = np.zeros((h, w), bool)
        edge[:, 1:] |= label[:, 1:] != label[:, :-1]
        edge[1:, :] |= label[1:, :] != label[:-1, :]
        todo = _max_filter(edge, r)
        if fixed is not None:
            todo &= ~fixed
        ys, xs = np.nonzero(todo)
        if ys.size == 0:
            break
        p = np.pad(label, r, mode="edge")
        sel = np.stack([p[ys + r + dy, xs + r + dx] for dy, dx in offsets], axis=1)
        centre = label[ys, xs]
        s = np.sort(sel, axis=1)
        run = np.ones(ys.size, np.int64)
        best, mode = run.copy(), s[:, 0].copy()
        for i in range(1, s.shape[1]):
            run = np.where(s[:, i] == s[:, i - 1], run + 1, 1)
            longer = run > best
            best = np.where(longer, run, best)
            mode = np.where(longer, s[:, i], mode)
        keep = (sel == centre[:, None]).sum(axis=1) >= best
        label = label.copy()
        label[ys, xs] = np.where(keep, centre, mode)
    return label


# ---------------------------------------------------------------------------
# Surfaces


class _UnionFind:
    def __init__(self, n):
        self.parent = np.arange(n)

    def find(self, i):
        p = self.parent
        root = i
        while p[root] != root:
            root = p[root]
        while p[i] != root:
            p[i], i = root, p[i]
        return root


def _box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean of (H, W, C) ``a`` over the (2r+1)^2 window, shrunk at the borders."""
    h, w = a.shape[:2]
    c = np.pad(a.astype(np.float64), ((1, 0), (1, 0), (0, 0))).cumsum(0).cumsum(1)
    y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    s = c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]
    return s / ((y1 - y0)[:, None, None] * (x1 - x0)[None, :, None])


def _superpixel_stats(sp: np.ndarray, lab: np.ndarray):
    """Per superpixel: area, mean Lab (K, 3), mean of the Lab averaged over a window
    of a superpixel's size (K, 3: the colour of a texture as a whole), colour
    spread (rms Lab distance to the mean) and share of textured pixels."""
    k = int(sp.max()) + 1
    flat = sp.ravel()
    area = np.bincount(flat, minlength=k).astype(np.float64)
    safe = np.maximum(area, 1)

    def means(img):
        col = img.reshape(-1, 3)
        return np.stack([np.bincount(flat, weights=col[:, c], minlength=k) / safe for c in range(3)], 1)

    mean = means(lab.astype(np.float64))
    blurred = means(_box_mean(lab, SEGMENT // 2))
    sq = means(lab.astype(np.float64) ** 2).sum(axis=1)
    spread = np.sqrt(np.maximum(sq - (mean**2).sum(axis=1), 0))
    p = np.pad(lab, ((1, 1), (1, 1), (0, 0)), mode="edge")
    grad = np.abs(p[2:, 1:-1] - p[:-2, 1:-1]).sum(axis=2) + np.abs(p[1:-1, 2:] - p[1:-1, :-2]).sum(axis=2)
    textured = np.bincount(flat, weights=(grad.ravel() > TEXTURE_GRADIENT), minlength=k) / safe
    return area, mean, blurred, spread, textured


def _merge(sp, lab, rng, target):
    """Surfaces made by merging random neighbouring superpixels.

    Two superpixels are told apart by their contact: the mean colour contrast
    across it (:func:`_contrast`, Lab units); when both are textured, by their
    colours averaged over a window of a superpixel's size instead (a texture's
    own edges do not count). First, all pairs under FLAT_DE merge (untextured
    ones only if their mean colours are within 2 FLAT_DE, lest two objects join
    through a gap in their edge): a region without a colour edge (a uniform
    area, a smooth gradient such as a sky, one texture) becomes one surface, not
    a patchwork along the superpixel grid, and the surfaces' borders fall on
    colour edges. Then, until ``target`` surfaces
    are left, pairs of neighbouring surfaces are drawn (a few disjoint ones per
    round) and merged, with a weight

        (exp(-dE / tau) + floor) / sqrt(smaller area / mean area) * (1 - merged area / total) ** 2

    (dE the length-weighted contrast of their contacts; tau and floor random per
    picture): weak edges go first, small pieces are absorbed, one surface rarely
    takes over the picture, and the floor lets any two neighbours merge now and
    then (strong colour edges inside a surface).

    Returns the surface of each superpixel (K,) and the superpixel stats."""
    area, mean, blurred, spread, textured = _superpixel_stats(sp, lab)
    a, b, length, _, _, contrast = _pairs(sp, _contrast(lab))
    k = area.size
    tex = textured >= TEXTURE_SHARE
    both = tex[a] & tex[b]
    de = np.where(both, np.sqrt(((blurred[a] - blurred[b]) ** 2).sum(axis=1)), contrast)
    apart = np.sqrt(((mean[a] - mean[b]) ** 2).sum(axis=1))
    uf = _UnionFind(k)
    for e in np.nonzero((de < FLAT_DE) & (both | (apart < 2 * FLAT_DE)))[0]:
        ra, rb = uf.find(a[e]), uf.find(b[e])
        if ra != rb:
            uf.parent[rb] = ra
    roots = np.array([uf.find(i) for i in range(k)])
    c_area = np.bincount(roots, weights=area, minlength=k)
    total = c_area.sum()
    alive = len(np.unique(roots[area > 0]))
    tau = rng.uniform(5.0, 20.0)
    floor = rng.uniform(0.01, 0.05)
    while alive > target:
        ra, rb = roots[a], roots[b]
        live = ra != rb
        if not live.any():
            break
        key = np.minimum(ra[live], rb[live]) * k + np.maximum(ra[live], rb[live])
        pairs, inv = np.unique(key, return_inverse=True)
        pa, pb = pairs // k, pairs % k
        pde = np.bincount(inv, weights=(de * length)[live]) / np.bincount(inv, weights=length[live])
        small = np.minimum(c_area[pa], c_area[pb]) / (total / alive)
        big = (c_area[pa] + c_area[pb]) / total
        weight = (np.exp(-pde / tau) + floor) / np.sqrt(np.maximum(small, 1e-3)) * (1 - big) ** 2 + 1e-12
        m = min(pairs.size, max(1, (alive - target) // 8))  # a few disjoint merges per round
        picks = rng.choice(pairs.size, size=m, replace=False, p=weight / weight.sum())
        used = set()
        for e in picks:
            keep, gone = int(pa[e]), int(pb[e])
            if keep in used or gone in used:
                continue
            used.update((keep, gone))
            roots[roots == gone] = keep
            c_area[keep] += c_area[gone]
            alive -= 1
    return roots, (spread, textured)


@dataclasses.dataclass
class _Surfaces:
    """Per-surface depth models: value(y, x) = base + gy dy + gx dx + amp * curve."""

    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray  # largest distance of a pixel from the centroid
    base: np.ndarray
    gy: np.ndarray
    gx: np.ndarray
    kind: np.ndarray  # 0 plane, 1 dome, 2 cylinder, 3 wave
    amp: np.ndarray
    uy: np.ndarray  # unit direction of the cylinder / wave
    ux: np.ndarray
    wavelength: np.ndarray
    phase: np.ndarray

    def value(self, k, y, x):
        dy, dx = y - self.cy[k], x - self.cx[k]
        r = self.radius[k]
        u = dy * self.uy[k] + dx * self.ux[k]
        wave = np.sin(2 * np.pi * u / self.wavelength[k] + self.phase[k])
        kind = self.kind[k]
        dome, cylinder = (dy * dy + dx * dx) / (r * r), u * u / (r * r)
        curve = np.select([kind == 1, kind == 2, kind == 3], [dome, cylinder, wave], 0.0)
        return self.base[k] + self.gy[k] * dy + self.gx[k] * dx + self.amp[k] * curve


def _shapes(surf, n, rng, textured_share):
    """Random slants and curvatures for ``n`` surfaces (bases set later)."""
    h, w = surf.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    flat = surf.ravel()
    area = np.maximum(np.bincount(flat, minlength=n), 1)
    cy = np.bincount(flat, weights=yy.ravel(), minlength=n) / area
    cx = np.bincount(flat, weights=xx.ravel(), minlength=n) / area
    r2 = (yy - cy[surf]) ** 2 + (xx - cx[surf]) ** 2
    radius = np.ones(n)
    np.maximum.at(radius, flat, np.sqrt(r2.ravel()))
    # slant: a total change of up to ~50 levels across the surface
    change = 50 * rng.random(n) ** 1.5
    theta = rng.uniform(0, 2 * np.pi, n)
    g = change / (2 * radius)
    kind = np.where(rng.random(n) < 0.3, rng.integers(1, 4, n), 0)
    kind[textured_share > 0.5] = 0  # textured areas: one plane
    amp = rng.uniform(5, 30, n) * rng.choice([-1.0, 1.0], n)
    amp = np.where(kind == 3, amp / 3, amp)
    phi = rng.uniform(0, 2 * np.pi, n)
    return _Surfaces(
        cy=cy,
        cx=cx,
        radius=radius,
        base=np.zeros(n),
        gy=g * np.sin(theta),
        gx=g * np.cos(theta),
        kind=kind,
        amp=amp,
        uy=np.sin(phi),
        ux=np.cos(phi),
        wavelength=radius * rng.uniform(0.7, 2.5, n),
        phase=rng.uniform(0, 2 * np.pi, n),
    )


def _order(surf, model, rng):
    """Bases so that each surface sits in front of (now and then behind) the one it
    is placed against, with a jump of JUMP_RANGE levels at their contact (10 %
    creases: no jump). Breadth-first from the largest surface, which starts far;
    a surface whose centroid is lower than its parent's is more likely in front."""
    n = model.base.size
    a, b, length, my, mx, _ = _pairs(surf)
    nbrs = [[] for _ in range(n)]
    for i in np.argsort(-length, kind="stable"):
        nbrs[a[i]].append((b[i], my[i], mx[i]))
        nbrs[b[i]].append((a[i], my[i], mx[i]))
    area = np.bincount(surf.ravel(), minlength=n)
    done = np.zeros(n, bool)
    lo, hi = DEPTH_RANGE
    for start in np.argsort(-area, kind="stable"):
        if done[start]:
            continue
        model.base[start] = rng.uniform(hi - 90, hi - 5)
        done[start] = True
        queue = deque([start])
        while queue:
            p = queue.popleft()
            for c, y, x in nbrs[p]:
                if done[c]:
                    continue
                here = float(model.value(p, y, x))
                jump = 0.0 if rng.random() < 0.1 else rng.uniform(*JUMP_RANGE)
                front = 0.8 if model.cy[c] > model.cy[p] else 0.6
                sign = -1.0 if rng.random() < front else 1.0
                if not lo + 5 <= here + sign * jump <= hi - 5:
                    sign = -sign
                model.base[c] = here + sign * jump - float(model.value(c, y, x) - model.base[c])
                done[c] = True
                queue.append(c)


def _cut(surf, sp, busy, n_cuts, rng):
    """Trap (b): ``n_cuts`` surfaces, drawn by area and colour uniformity, are cut
    through their most uniform superpixel by a straight, bent or circular line.
    ``busy`` (K,) is each superpixel's colour activity (colour spread plus 30 x
    textured share), low where uniform. Returns a list of (bool mask of the side that jumps, anchor y,
    anchor x)."""
    h, w = surf.shape
    n = int(surf.max()) + 1
    flat = surf.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    sp_area = np.bincount(sp.ravel(), minlength=busy.size).astype(np.float64)
    # surface of each superpixel: the one holding most of its pixels
    pair = sp.ravel().astype(np.int64) * n + flat
    counts = np.bincount(pair, minlength=busy.size * n).reshape(busy.size, n)
    sp_surf = counts.argmax(axis=1)
    sp_busy = np.bincount(sp_surf, weights=busy * sp_area, minlength=n) / np.maximum(
        np.bincount(sp_surf, weights=sp_area, minlength=n), 1
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    min_area = 4 * SEGMENT * SEGMENT
    weight = np.where(area >= min_area, area / (1 + sp_busy / 3) ** 2, 0.0)
    cuts = []
    for _ in range(n_cuts):
        if weight.sum() <= 0:
            break
        s = rng.choice(n, p=weight / weight.sum())
        weight[s] = 0
        mine = np.nonzero((sp_surf == s) & (sp_area >= 0.5 * np.median(sp_area[sp_area > 0])))[0]
        if mine.size == 0:
            continue
        anchor = mine[np.argmin(busy[mine])]
        inside = sp == anchor
        y0, x0 = yy[inside].mean(), xx[inside].mean()
        inner = surf == s
        size = np.sqrt(area[s])
        for _ in range(10):
            kind = rng.integers(3)
            theta = rng.uniform(0, 2 * np.pi)
            dy, dx = yy - y0, xx - x0
            along = dy * np.sin(theta) + dx * np.cos(theta)
            across = -dy * np.cos(theta) + dx * np.sin(theta)
            if kind == 0:
                f = along
            elif kind == 1:
                f = along + rng.uniform(0.05, 0.25) * size * np.sin(
                    2 * np.pi * across / (size * rng.uniform(0.4, 1.5)) + rng.uniform(0, 2 * np.pi)
                )
            else:
                r = size * rng.uniform(0.2, 0.6)
                f = r - np.hypot(dy - r * np.sin(theta), dx - r * np.cos(theta))
            side = inner & (f > 0)
            share = side.sum() / area[s]
            if 0.1 <= share <= 0.9:
                cuts.append((side, y0, x0))
                break
    return cuts


def _fit_range(depth: np.ndarray) -> np.ndarray:
    """Depth shifted, and squeezed when wider, into DEPTH_RANGE."""
    lo, hi = DEPTH_RANGE
    dmin, dmax = float(depth.min()), float(depth.max())
    span = max(dmax - dmin, 1e-9)
    k = min(1.0, (hi - lo) / span)
    start = min(max(dmin, lo), hi - span * k)
    return start + (depth - dmin) * k


# ---------------------------------------------------------------------------
# Noise


@dataclasses.dataclass(frozen=True)
class DepthNoise:
    """A ToF-like sensor reading of a clean depth map (:func:`depth_noise`).

    Each picture draws its own parameters uniformly from these (low, high) ranges,
    so a training set covers a spread of sensors; give equal ends to fix one.

    Attributes
    ----------
    sigma_near : (float, float)
        Noise standard deviation at depth 0, levels.
    sigma_far : (float, float)
        What the standard deviation adds at depth 255, levels:
        ``sigma(d) = near + far * (d / 255) ** power``.
    power : float
        2 for the ToF-like law (sigma growing with depth squared), 1 for linear.
    quant_far : (float, float)
        Disparity quantisation: the depth step at 255 levels. The reading is
        quantised uniformly in disparity ``C / d`` with ``C = 255**2 / step``, so
        steps shrink with depth squared towards the camera; then rounded to
        integer levels (an 8-bit map).
    edge_jump : float
        A 4-neighbour difference of the clean depth above this (levels) is a depth edge.
    hole_radius : (int, int)
        Holes reach this many pixels into the far side of a depth edge.
    hole_share : (float, float)
        Share of the depth edges, taken in 8 x 8 px blocks, that get holes.
    dropout_share : (float, float)
        Share of the map, drawn per map, lost to dropouts: elliptic blobs
        anywhere, edges or not (surfaces that return no signal), so that a model
        does not learn that every hole lies on the far side of an edge.
    dropout_radius : (float, float)
        Range of the blobs' radii, px, drawn log-uniformly.
    """

    sigma_near: tuple = (0.2, 1.0)
    sigma_far: tuple = (1.0, 6.0)
    power: float = 2.0
    quant_far: tuple = (1.0, 4.0)
    edge_jump: float = 8.0
    hole_radius: tuple = (1, 3)
    hole_share: tuple = (0.3, 1.0)
    dropout_share: tuple = (0.0, 0.04)
    dropout_radius: tuple = (2.0, 40.0)

    def sigma(self, depth, near: float, far: float):
        """Noise standard deviation (levels) at ``depth`` for drawn ``near``, ``far``."""
        return near + far * (np.asarray(depth, np.float64) / 255.0) ** self.power


def _far_edges(depth: np.ndarray, jump: float) -> np.ndarray:
    """Pixels on the far (larger) side of a 4-neighbour jump above ``jump``."""
    out = np.zeros(depth.shape, bool)
    dx = depth[:, 1:] - depth[:, :-1]
    dy = depth[1:, :] - depth[:-1, :]
    out[:, 1:] |= dx > jump
    out[:, :-1] |= -dx > jump
    out[1:, :] |= dy > jump
    out[:-1, :] |= -dy > jump
    return out


def _dropouts(shape, rng: np.random.Generator, p: DepthNoise) -> np.ndarray:
    """bool (H, W): elliptic blobs covering about a drawn share of the map."""
    h, w = shape
    out = np.zeros((h, w), bool)
    target = rng.uniform(*p.dropout_share) * h * w
    lo, hi = np.log(p.dropout_radius[0]), np.log(p.dropout_radius[1])
    for _ in range(256):
        if out.sum() >= target:
            break
        r = np.exp(rng.uniform(lo, hi))
        ry, rx = r * rng.uniform(0.5, 1.5, 2)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = int(max(cy - ry, 0)), int(min(cy + ry + 1, h))
        x0, x1 = int(max(cx - rx, 0)), int(min(cx + rx + 1, w))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1] |= ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1
    return out


def depth_noise(
    clean: np.ndarray, rng: np.random.Generator, params: DepthNoise | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A ToF-like reading of a clean depth map: noise, quantisation, holes.

    In order: Gaussian noise of standard deviation ``params.sigma(depth)``
    (growing with depth), quantisation uniform in disparity, rounding to integer
    levels in [0, 255], and holes: pixels up to ``hole_radius`` px into the far
    side of a depth edge (where occlusion hides the surface from the emitter),
    along a random share of the edges, and dropouts anywhere (``dropout_share``).
    Holes read 0.

    Parameters
    ----------
    clean : ndarray
        float (H, W) depth in levels.
    rng : numpy.random.Generator
    params : DepthNoise, optional
        Parameter ranges; default ``DepthNoise()``.

    Returns
    -------
    noisy : ndarray
        float32 (H, W), integer levels, 0 in holes.
    valid : ndarray
        bool (H, W), False in holes (``valid.astype(np.float32)`` is the mask
        that :func:`pafu_cli.pac.jbu` takes).
    """
    p = params or DepthNoise()
    d = np.asarray(clean, np.float64)
    near, far = rng.uniform(*p.sigma_near), rng.uniform(*p.sigma_far)
    noisy = d + rng.standard_normal(d.shape) * p.sigma(d, near, far)
    c = 255.0**2 / rng.uniform(*p.quant_far)
    noisy = c / np.maximum(np.rint(c / np.maximum(noisy, 1.0)), 1.0)
    noisy = np.clip(np.rint(noisy), 0, 255)
    radius = int(rng.integers(p.hole_radius[0], p.hole_radius[1] + 1))
    share = rng.uniform(*p.hole_share)
    h, w = d.shape
    blocks = rng.random(((h + 7) // 8, (w + 7) // 8)) < share
    seeds = _far_edges(d, p.edge_jump) & np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:h, :w]
    near_side = -_max_filter(-d, radius)  # local minimum: the near side of a nearby edge
    holes = _max_filter(seeds, radius) & (d > near_side + p.edge_jump / 2)
    holes |= _dropouts(d.shape, rng, p)
    noisy[holes] = 0
    return noisy.astype(np.float32), ~holes


# ---------------------------------------------------------------------------
# The generator


def synth_rgbd(rgb8: np.ndarray, rng: np.random.Generator, *, noise: bool | DepthNoise = False):
    """A synthetic RGB-D pair made from a photograph (see the module's description).

    Steps: over-segment the photo (:func:`oversegment`, superpixels of ~20 px);
    merge neighbouring superpixels into surfaces (first those without a colour
    edge between them, then random neighbours, likelier the weaker the edge;
    6..20 surfaces for a 320 x 480 picture, scaled with the square root of the
    area); clean the surface borders with a 5 x 5 then a 3 x 3 majority filter,
    except on strong colour edges outside textures, where the borders stay on
    the edge to the pixel; give each surface a slanted plane, 30 % of the
    untextured ones a dome, cylinder or wave; order them by depth with jumps of
    10..80 levels at their contacts; cut 1..4 surfaces (1.5 on average at
    320 x 480) through their most uniform part and move one side by 10..60
    levels; map into 20..240. About 0.2 s for 320 x 480 on 2 cores.

    Parameters
    ----------
    rgb8 : ndarray
        uint8 (H, W, 3) photograph, at least 16 x 16.
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same pair.
    noise : bool or DepthNoise
        False: return the clean pair. True (default ranges) or a
        :class:`DepthNoise`: also a ToF-like reading of the depth (:func:`depth_noise`).

    Returns
    -------
    (guide, depth) when ``noise`` is False:
        guide uint8 (H, W, 3), a copy of ``rgb8``; depth float32 (H, W), levels,
        larger = farther, in [20, 240], not quantised.
    (guide, noisy, clean, valid) otherwise:
        noisy float32 (H, W) integer levels, 0 in holes; clean as ``depth`` above;
        valid bool (H, W), False in holes.
    """
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise ValueError(f"synth_rgbd needs a uint8 (H, W, 3) photo, got {rgb8.dtype} {rgb8.shape}")
    h, w = rgb8.shape[:2]
    if min(h, w) < 16:
        raise ValueError(f"synth_rgbd needs a photo of at least 16 x 16 px, got {h} x {w}")
    lab = _lab(rgb8)
    sp = oversegment(rgb8, lab=lab)
    _, sp = np.unique(sp, return_inverse=True)
    sp = sp.reshape(h, w)
    scale = np.sqrt(h * w / REF_AREA)
    n_sp = int(sp.max()) + 1
    target = int(np.clip(round(rng.uniform(TARGET[0], TARGET[1]) * scale), 3, max(3, n_sp)))
    roots, (spread, textured) = _merge(sp, lab, rng, target)
    # pixels on a strong colour edge outside textures keep their superpixel's surface
    hor, ver = _contrast(lab)
    strong = np.zeros((h, w), bool)
    strong[:, 1:] |= hor > EDGE_DE
    strong[:, :-1] |= hor > EDGE_DE
    strong[1:] |= ver > EDGE_DE
    strong[:-1] |= ver > EDGE_DE
    strong &= textured[sp] < TEXTURE_SHARE
    surf = _majority(_majority(roots[sp], 2, 1, strong), 1, 1, strong)
    _, surf = np.unique(surf, return_inverse=True)
    surf = surf.reshape(h, w)
    n = int(surf.max()) + 1
    tex_px = np.bincount(surf.ravel(), weights=textured[sp].ravel(), minlength=n)
    tex_share = tex_px / np.maximum(np.bincount(surf.ravel(), minlength=n), 1)
    model = _shapes(surf, n, rng, tex_share)
    _order(surf, model, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    depth = model.value(surf, yy, xx)
    n_cuts = int(np.clip(round(rng.uniform(0.5, 2.5) * scale), 1, 4))
    for side, y0, x0 in _cut(surf, sp, spread + 30 * textured, n_cuts, rng):
        jump = rng.uniform(*CUT_JUMP) * rng.choice([-1.0, 1.0])
        tilt = rng.normal(0, 0.05, 2)
        depth[side] += jump + tilt[0] * (yy[side] - y0) + tilt[1] * (xx[side] - x0)
    depth = _fit_range(depth).astype(np.float32)
    guide = rgb8.copy()
    if not isinstance(noise, DepthNoise) and not noise:
        return guide, depth
    noisy, valid = depth_noise(depth, rng, noise if isinstance(noise, DepthNoise) else None)
    return guide, noisy, depth, valid


# ---------------------------------------------------------------------------
# Validation set and protocol


def validation_set(
    folders,
    n: int = 30,
    seed: int = 0,
    size: tuple | None = (320, 480),
    *,
    val_every: int = 10,
    noise: bool | DepthNoise = False,
) -> list:
    """The synthetic RGB-D validation set: pairs made from the validation split of
    the training photos, the same for every caller with the same arguments.

    The photos are the validation part of ``split_files(list_images(folders),
    val_every)``. With ``size`` = (h, w), a photo is transposed when its
    orientation differs from ``size``'s, photos smaller than ``size`` are left
    out, and the rest are centre-cropped to ``size``; with ``size=None`` they
    keep their own size (with the default size, the T91 validation photos, all
    smaller, are left out: the set is made from the 20 BSD200 ones, pairs 20 to
    29 on their left-right flips). Pair i is made from photo ``i % m`` (m photos),
    flipped on later rounds through them (none, left-right, 180 degrees,
    up-down), by :func:`synth_rgbd` with ``np.random.default_rng([seed, i])``,
    so pair i does not depend on ``n``.

    Parameters
    ----------
    folders : sequence of paths
        Training image folders (``shared/data/T91``, ``shared/data/BSD200``).
    n : int
        Number of pairs.
    seed : int
    size : (int, int) or None
        Crop size (h, w).
    val_every : int
        The split rule of :func:`~pafu_cli.training.data.split_files`.
    noise : bool or DepthNoise
        As in :func:`synth_rgbd` (then the items are 4-tuples).

    Returns
    -------
    list
        ``n`` tuples as :func:`synth_rgbd` returns them: (guide, depth), or with
        ``noise`` (guide, noisy, clean, valid).
    """
    _, files = split_files(list_images(folders), val_every)
    photos = []
    for f in files:
        im = read_rgb8(f)
        if size is not None:
            h, w = size
            if (im.shape[0] > im.shape[1]) != (h > w):
                im = im.transpose(1, 0, 2)
            if im.shape[0] < h or im.shape[1] < w:
                continue
            y0, x0 = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
            im = im[y0 : y0 + h, x0 : x0 + w]
        photos.append(np.ascontiguousarray(im))
    if not photos:
        raise FileNotFoundError(f"no validation photo of at least {size} in {', '.join(map(str, folders))}")
    out = []
    for i in range(n):
        rounds, j = divmod(i, len(photos))
        im = np.ascontiguousarray(dihedral(photos[j], (0, 4, 2, 6)[rounds % 4]))
        out.append(synth_rgbd(im, np.random.default_rng([seed, i]), noise=noise))
    return out


def degrade_bicubic(depth: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """The P1 ("bicubic", DCTNet / FDSR / JIIF) low-resolution input of a depth map.

    The map is cropped at the top left to a multiple of ``s`` on both sides, then
    shrunk by ``s`` with Pillow's float (mode 'F') bicubic resize, which is
    antialiased; the result is not re-quantised. Crop the guide the same way:
    ``guide[: hr.shape[0], : hr.shape[1]]``.

    Parameters
    ----------
    depth : ndarray
        (H, W) depth map, any float units.
    s : int
        Scale factor.

    Returns
    -------
    lr : ndarray
        float32 (H // s, W // s).
    hr : ndarray
        float32 (H // s * s, W // s * s), the cropped target.
    """
    s = int(s)
    h, w = depth.shape[0] // s * s, depth.shape[1] // s * s
    if h == 0 or w == 0:
        raise ValueError(f"a {depth.shape[0]} x {depth.shape[1]} map is smaller than the scale {s}")
    hr = np.ascontiguousarray(depth[:h, :w], np.float32)
    return pillow_bicubic(hr, w // s, h // s), hr

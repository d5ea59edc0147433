"""Training data synthesis from ordinary RGB images (NumPy only).

- Super-resolution pairs: HR images (optionally shrunk first, for scale
  augmentation) mod-cropped, LR made with MATLAB-compatible bicubic on uint8.
- Bayer mosaics of all four layouts, phase-shifted to RGGB as inference does,
  with optional heteroskedastic Gaussian noise, variance ``a * x + b``.
- Random crops with the 8 flips/rotations.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pafu_cli.cfa import PATTERNS, RED_OFFSET, mosaic
from pafu_cli.evaluation.resize import imresize, modcrop
from pafu_cli.io.images import read_image

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def list_images(folders) -> list:
    """Sorted image files of the given folders."""
    files = []
    for d in folders:
        files += sorted(p for p in Path(d).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f"no training images in {', '.join(map(str, folders))}")
    return files


def split_files(files, val_every: int = 10):
    """Deterministic train/validation split: every ``val_every``-th file validates
    (with fewer than ``val_every`` files, the last one; a single file trains only)."""
    val = [f for i, f in enumerate(files) if i % val_every == val_every - 1]
    train = [f for i, f in enumerate(files) if i % val_every != val_every - 1]
    if not val and len(files) >= 2:
        train, val = list(files[:-1]), [files[-1]]
    return train, val


def read_rgb8(path) -> np.ndarray:
    """An 8-bit image file as (H, W, 3) uint8: grey repeated, alpha dropped."""
    im = read_image(path)
    if im.dtype != np.uint8:
        raise ValueError(f"{path}: training and validation images must be 8-bit, got {im.dtype}")
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    return np.ascontiguousarray(im[..., :3]).astype(np.uint8)


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of an (H, W, ...) array, k in 0..7."""
    if k & 4:
        a = a[:, ::-1]
    return np.rot90(a, k & 3, axes=(0, 1))


def _pick(rng, shapes, batch: int, patch: int) -> np.ndarray:
    """Indices of ``batch`` images large enough for ``patch``, drawn by area."""
    weights = np.array([h * w if min(h, w) >= patch else 0 for h, w in shapes], np.float64)
    if weights.sum() == 0:
        raise ValueError(f"no training image is at least {patch} px on both sides")
    return rng.choice(len(shapes), size=batch, p=weights / weights.sum())


@dataclasses.dataclass
class SRPairs:
    """Pre-computed (LR, HR) uint8 pairs for one scale."""

    lr: list
    hr: list

    @classmethod
    def build(cls, files, scale: int, shrink=(1.0,)):
        lr, hr = [], []
        for f in files:
            im = read_rgb8(f)
            for z in shrink:
                h = im if z == 1.0 else imresize(im, z)
                h = modcrop(h, scale)
                if min(h.shape[:2]) < 8 * scale:
                    continue
                hr.append(h)
                lr.append(imresize(h, 1.0 / scale))
        return cls(lr, hr)

    def sample(self, rng, batch: int, lr_patch: int, scale: int):
        """(B, 3, p, p) LR and (B, 3, sp, sp) HR float32 batches in [0, 1]."""
        picks = _pick(rng, [a.shape[:2] for a in self.lr], batch, lr_patch)
        xs, ys = [], []
        for i in picks:
            lr, hr = self.lr[i], self.hr[i]
            y0 = rng.integers(0, lr.shape[0] - lr_patch + 1)
            x0 = rng.integers(0, lr.shape[1] - lr_patch + 1)
            lp = lr[y0 : y0 + lr_patch, x0 : x0 + lr_patch]
            hp = hr[y0 * scale : (y0 + lr_patch) * scale, x0 * scale : (x0 + lr_patch) * scale]
            k = int(rng.integers(8))
            xs.append(dihedral(lp, k))
            ys.append(dihedral(hp, k))

        def to(a):
            return np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2), np.float32) / 255

        return to(xs), to(ys)


@dataclasses.dataclass
class NoiseRange:
    """Heteroskedastic noise ``N(0, a x + b)`` with ``a``, ``sqrt(b)`` drawn uniformly."""

    a_max: float = 0.0
    sigma_max: float = 0.0  # sqrt(b), in [0, 1] units
    p_clean: float = 0.0  # share of clean patches
    sigma_min: float = 0.0  # lower end of sqrt(b) (noise-level specialists)

    @property
    def enabled(self) -> bool:
        return self.a_max > 0 or self.sigma_max > 0

    def apply(self, rng, cfa: np.ndarray) -> np.ndarray:
        if not self.enabled or rng.random() < self.p_clean:
            return cfa
        a = rng.uniform(0, self.a_max)
        sigma = rng.uniform(self.sigma_min, self.sigma_max)
        var = np.maximum(a * cfa + sigma * sigma, 0)
        noisy = cfa + rng.standard_normal(cfa.shape).astype(np.float32) * np.sqrt(var)
        return np.clip(noisy, 0, 1).astype(np.float32)


def scale_saturation(rgb: np.ndarray, factor, peak: float = 1.0) -> np.ndarray:
    """``rgb`` with its saturation scaled by ``factor`` around the per-pixel channel
    mean (the grey axis kept), clipped to [0, ``peak``]."""
    grey = rgb.mean(axis=2, keepdims=True)
    return np.clip(grey + factor * (rgb - grey), 0, peak)


def saturate8(im8: np.ndarray, factor: float) -> np.ndarray:
    """uint8 RGB with its saturation scaled by ``factor`` (:func:`scale_saturation`), rounded."""
    if factor == 1:
        return im8
    return np.rint(scale_saturation(im8.astype(np.float32), factor, 255)).astype(np.uint8)


def vary_colours(rng, rgb: np.ndarray, sat_max: float = 2.0) -> np.ndarray:
    """Random channel permutation and saturation change (grey axis kept), clipped to [0, 1].

    The saturation factor is log-uniform in [0.5, ``sat_max``].
    """
    rgb = rgb[..., rng.permutation(3)]
    sat = np.float32(np.exp(rng.uniform(np.log(0.5), np.log(sat_max))))
    return scale_saturation(rgb, sat).astype(np.float32)


def invert_channel(rng, rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (in [0, 1]) with one random channel inverted (x -> 1 - x).

    Along the patch's edges that colour then falls where the others rise (as
    between a red and a green object), which the training photos rarely show:
    their channels' local contrast is almost always positively correlated.
    """
    out = rgb.copy()
    c = int(rng.integers(3))
    out[..., c] = 1 - out[..., c]
    return out


def region_gains(rng, h: int, w: int, cell: int = 48, low: float = 0.2) -> np.ndarray:
    """(h, w, 3) float64 gain field: each region of a random Voronoi partition (cells
    of about ``cell`` x ``cell`` px) gets its own RGB gains (uniform in [``low``, 1],
    the largest set to 1), the field smoothed by [1, 2, 1] / 4 in both directions so
    that region borders become edges 2 px wide, not aliased steps."""
    n = max(2, int(round(h * w / cell**2)))
    pts = np.stack([rng.uniform(0, h, n), rng.uniform(0, w, n)], axis=1)
    gains = rng.uniform(low, 1.0, (n, 3))
    gains /= gains.max(axis=1, keepdims=True)
    xx = np.arange(w, dtype=np.float64)
    labels = np.empty((h, w), np.int64)
    for y in range(h):  # nearest seed per pixel, one row at a time
        d = (y - pts[:, 0, None]) ** 2 + (xx[None] - pts[:, 1, None]) ** 2
        labels[y] = d.argmin(axis=0)
    g = gains[labels]
    for axis in (0, 1):
        p = np.pad(g, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="edge")
        before, mid, after = (np.take(p, np.arange(i, i + g.shape[axis]), axis=axis) for i in range(3))
        g = 0.25 * before + 0.5 * mid + 0.25 * after
    return g


def recolour_regions(im8: np.ndarray, seed: int, cell: int = 48, low: float = 0.2) -> np.ndarray:
    """uint8 RGB multiplied by a random per-region gain field (:func:`region_gains`,
    seeded by ``seed``), rounded.

    Inside a region the texture keeps its colours' correlation; across a border
    the colours jump independently, as between objects of different hue (a
    validation proxy for McMaster-like pictures, ``tools/calibrate/val_colour.py``).
    """
    g = region_gains(np.random.default_rng(seed), im8.shape[0], im8.shape[1], cell, low)
    return np.clip(np.rint(im8.astype(np.float64) * g), 0, 255).astype(np.uint8)


def validation_picture(
    im8: np.ndarray, index: int, saturation: float = 1.0, regions: bool = False
) -> np.ndarray:
    """The demosaick validation picture made from held-out image number ``index``:
    cropped to even size, its saturation scaled (:func:`saturate8`) and, with
    ``regions``, recoloured per region (:func:`recolour_regions`, seeded by ``index``).
    ``pafu train`` and the colour benchmarks build their pictures with it."""
    h, w = im8.shape[0] // 2 * 2, im8.shape[1] // 2 * 2
    out = saturate8(im8[:h, :w], saturation)
    return recolour_regions(out, index) if regions else out


@dataclasses.dataclass
class BayerImages:
    """RGB images from which RGGB-phased mosaics and their ground truth are cut."""

    images: list

    @classmethod
    def build(cls, files, shrink=(1.0,)):
        """The pictures, and for each factor in ``shrink`` other than 1 a copy shrunk
        by it (MATLAB bicubic, antialiased): finer detail per pixel, more colour
        edges per patch."""
        out = []
        for f in files:
            im = read_rgb8(f)
            out.extend(im if z == 1.0 else imresize(im, z) for z in shrink)
        return cls(out)

    def sample(
        self,
        rng,
        batch: int,
        patch: int,
        noise: NoiseRange,
        color_aug: float = 0.0,
        color_sat: float = 2.0,
        color_invert: float = 0.0,
        color_regions: float = 0.0,
    ):
        """(B, 1, p, p) RGGB mosaics and (B, 3, p, p) ground truth, float32 in [0, 1].

        Each patch is mosaicked with a random one of the four layouts and then
        phase-shifted to RGGB by dropping its first row and/or column, exactly
        the shift inference applies. ``color_aug`` is the share of patches whose
        colours are varied (random RGB permutation and saturation x0.5..``color_sat``),
        so that the bank sees colour statistics beyond those of the photos;
        ``color_invert`` the share with one channel inverted (:func:`invert_channel`),
        ``color_regions`` the share multiplied by a random per-region gain field
        (:func:`region_gains`: colour edges whose channels jump independently).
        """
        picks = _pick(rng, [a.shape[:2] for a in self.images], batch, patch + 1)
        xs, ys = [], []
        for i in picks:
            im = self.images[i]
            y0 = rng.integers(0, im.shape[0] - patch)
            x0 = rng.integers(0, im.shape[1] - patch)
            crop = dihedral(im[y0 : y0 + patch + 1, x0 : x0 + patch + 1], int(rng.integers(8)))
            crop = crop.astype(np.float32) / 255
            if color_aug and rng.random() < color_aug:
                crop = vary_colours(rng, crop, color_sat)
            if color_invert and rng.random() < color_invert:
                crop = invert_channel(rng, crop)
            if color_regions and rng.random() < color_regions:
                crop = (crop * region_gains(rng, *crop.shape[:2])).astype(np.float32)
            pattern = PATTERNS[int(rng.integers(4))]
            cfa = mosaic(crop, pattern)
            ry, rx = RED_OFFSET[pattern]
            cfa = cfa[ry : ry + patch, rx : rx + patch]
            gt = crop[ry : ry + patch, rx : rx + patch]
            xs.append(noise.apply(rng, cfa))
            ys.append(gt)
        x = np.ascontiguousarray(np.stack(xs)[:, None], np.float32)
        y = np.ascontiguousarray(np.stack(ys).transpose(0, 3, 1, 2), np.float32)
        return x, y

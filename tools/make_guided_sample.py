#!/usr/bin/env python3
"""Render the shipped guided-upsampling sample: a 640x480 colour picture of a small
synthetic room (slanted floor, textured wall, a ball, a box the colour of the wall)
with its depth in millimetres, and the depth at 1/8 resolution (80x60, 16-bit PNG,
0 = no measurement in a few places) as a low-resolution sensor would give it.

  python tools/make_guided_sample.py [--out samples]

Writes room_rgb.png, room_depth.png (the full-resolution truth) and
room_depth_x8.png. Everything is computed here (no photograph), so the files carry
no third-party licence. Deterministic: the same files every run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

H, W, F = 480, 640, 520.0  # image size and focal length in pixels


def render():
    """(rgb uint8 (H, W, 3), depth float64 mm (H, W)) of the scene, by ray casting."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    ray = np.stack([(xx + 0.5 - W / 2) / F, (yy + 0.5 - H / 2) / F, np.ones_like(xx)], axis=-1)
    depth = np.full((H, W), np.inf)
    colour = np.zeros((H, W, 3))
    normal = np.zeros((H, W, 3))

    def hit(t, col, nrm):
        closer = (t > 0) & (t < depth)
        depth[closer] = t[closer]
        colour[closer] = col[closer] if col.ndim == 3 else col
        normal[closer] = nrm[closer] if nrm.ndim == 3 else nrm

    # Back wall z = 3200 mm, with a printed pattern (colour edges, no depth edges).
    t = 3200.0 / ray[..., 2]
    px, py = ray[..., 0] * t, ray[..., 1] * t
    stripes = (np.floor(px / 180) % 2 == 0)[..., None]
    wall = np.where(stripes, [0.75, 0.72, 0.62], [0.55, 0.60, 0.70])
    wall = np.where((np.hypot(px - 700, py + 600) < 260)[..., None], [0.85, 0.3, 0.2], wall)
    hit(t, wall, np.array([0, 0, -1.0]))
    # Floor y = 700 mm (camera above it): a checkerboard, slanted in depth.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ray[..., 1] > 1e-6, 700.0 / ray[..., 1], -1)
    fx, fz = ray[..., 0] * t, ray[..., 2] * t
    checker = ((np.floor(fx / 250) + np.floor(fz / 250)) % 2 == 0)[..., None]
    hit(t, np.where(checker, [0.35, 0.30, 0.25], [0.65, 0.58, 0.45]), np.array([0, -1, 0.0]))
    # A ball (radius 380 mm) on the floor.
    c = np.array([-520.0, 320.0, 2100.0])
    b = ray @ c
    a = np.sum(ray * ray, axis=-1)
    disc = b * b - a * (c @ c - 380.0**2)
    with np.errstate(invalid="ignore"):
        t = np.where(disc > 0, (b - np.sqrt(np.maximum(disc, 0))) / a, -1)
    p = ray * t[..., None]
    hit(t, np.array([0.2, 0.45, 0.8]), (p - c) / 380.0)
    # A box the wall's colour in front of the wall (a depth edge without a colour edge).
    t = 2700.0 / ray[..., 2]
    bx, by = ray[..., 0] * t, ray[..., 1] * t
    inside = (bx > 350) & (bx < 1150) & (by > -150) & (by < 700)
    hit(np.where(inside, t, -1), wall, np.array([0, 0, -1.0]))
    light = np.array([0.35, -0.6, -0.7])
    light /= np.linalg.norm(light)
    shade = 0.45 + 0.55 * np.clip(normal @ light, 0, 1)
    rgb = np.clip(colour * shade[..., None], 0, 1)
    rng = np.random.default_rng(20261207)
    rgb = np.clip(rgb + rng.normal(0, 0.008, rgb.shape), 0, 1)  # a little sensor noise
    return (rgb * 255 + 0.5).astype(np.uint8), depth  # z-depth: rays have z = 1


def low_res(depth, s=8, seed=7):
    """The depth a low-resolution sensor sees: each pixel the mean over its s x s
    footprint, ToF-like noise growing with distance, quantised to mm, and a few
    missing measurements (0) at depth edges."""
    h, w = depth.shape[0] // s, depth.shape[1] // s
    block = depth[: h * s, : w * s].reshape(h, s, w, s)
    lr = block.mean(axis=(1, 3))
    spread = block.max(axis=(1, 3)) - block.min(axis=(1, 3))
    rng = np.random.default_rng(seed)
    lr = lr + rng.normal(0, 1, lr.shape) * (2 + 2e-6 * lr**2)
    lr = np.round(lr)
    lr[(spread > 300) & (rng.random(lr.shape) < 0.5)] = 0  # mixed pixels at edges dropped
    return lr.astype(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="samples", help="output folder (default: samples)")
    args = ap.parse_args()
    from pafu_cli.io.images import write_image

    rgb, depth = render()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "room_rgb.png", rgb, overwrite=True)
    write_image(out / "room_depth.png", np.round(depth).astype(np.uint16), overwrite=True)
    write_image(out / "room_depth_x8.png", low_res(depth), overwrite=True)
    print(f"wrote {out}/room_rgb.png, room_depth.png, room_depth_x8.png")


if __name__ == "__main__":
    main()

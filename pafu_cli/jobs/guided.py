"""``pafu guided-upsample`` for one file: read a low-resolution map and its guide,
upsample, write the map in its own format, units and bit depth (and a preview)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from pafu_cli.errors import InputError, OutputError
from pafu_cli.guided import DEFAULT_METHOD
from pafu_cli.io.images import IMAGE_EXTENSIONS, check_output_target, image_shape, read_image, write_image
from pafu_cli.io.maps import FLOW_UNKNOWN, check_map_target, map_info, read_map, write_map
from pafu_cli.limits import check_memory

# Bytes held per output pixel and map channel: the float32 result and its mask;
# per guide pixel: the guide as read (up to 16-bit RGB).
OUT_BYTES_PER_PIXEL_CHANNEL = 4
OUT_MASK_BYTES_PER_PIXEL = 4
GUIDE_BYTES_PER_PIXEL = 6


@dataclasses.dataclass(frozen=True)
class GuidedOptions:
    guide: str  # an image file, or a folder of guides paired by file stem
    scale: int | None = None  # None: "auto" (the guide's size) unless size is given
    size: tuple | None = None  # (rows, columns)
    method: str = DEFAULT_METHOD
    invalid: str | None = None  # "0": zeros are holes too ("nan": NaN only, the default for floats)
    vectors: bool | None = None  # rescale 2-channel values as motion vectors; None: for .flo
    preview: str | None = None
    sigma_spatial: float | None = None
    sigma_range: float | None = None
    overwrite: bool = False


def _stem_key(stem: str) -> str:
    """The name without its last ``_part`` (``01_depth`` -> ``01``)."""
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def find_guide(src, folder) -> Path:
    """The guide of map ``src`` in ``folder``: the image with the same stem, else the
    one image whose stem matches once the last ``_part`` of each is dropped
    (``01_depth.png`` pairs with ``01_rgb.png``)."""
    src, folder = Path(src), Path(folder)
    images = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and p != src
    )
    same = [p for p in images if p.stem == src.stem]
    if len(same) == 1:
        return same[0]
    key = _stem_key(src.stem)
    near = [p for p in images if _stem_key(p.stem) == key and p.stem != src.stem]
    if len(same) > 1 or len(near) > 1:
        names = ", ".join(p.name for p in (same or near)[:4])
        raise InputError(f"{src}: several possible guides in {folder} ({names}); give the guide file")
    if not near:
        raise InputError(
            f"{src}: no guide for it in {folder} (looked for {src.stem}.* and {key}_*.png/.tif/.jpg); "
            "name each guide after its map"
        )
    return near[0]


def _guide_path(src, opts: GuidedOptions) -> Path:
    g = Path(opts.guide)
    if g.is_dir():
        return find_guide(src, g)
    return g


def output_size(lr_shape, guide_shape, opts: GuidedOptions) -> tuple:
    if opts.size is not None:
        return tuple(opts.size)
    if opts.scale is not None:
        return lr_shape[0] * opts.scale, lr_shape[1] * opts.scale
    return tuple(guide_shape[:2])


def check_options(opts: GuidedOptions) -> None:
    """What every file shares, checked before the first: the guide exists, the
    method is known or a loadable guided-upsampling model."""
    from pafu_cli.guided import METHODS
    from pafu_cli.models.registry import resolve_model

    g = Path(opts.guide)
    if not g.exists():
        raise InputError(f"{g}: no such guide file or folder")
    if opts.method not in METHODS:
        resolve_model(opts.method, "guided_upsample")


def _check_preview(preview, dst, overwrite: bool) -> None:
    if preview is None:
        return
    check_output_target(preview, overwrite)
    if os.path.abspath(preview) == os.path.abspath(dst):
        raise OutputError(f"{preview}: the preview would replace the output; give another name")


def guided_file(src, dst, opts: GuidedOptions) -> None:
    """``pafu guided-upsample`` for one map."""
    from pafu_cli.guided import guided_upsample

    check_map_target(dst, opts.overwrite)
    _check_preview(opts.preview, dst, opts.overwrite)
    gpath = _guide_path(src, opts)
    info = map_info(src)
    gshape = image_shape(gpath)
    size = output_size((info.height, info.width), gshape, opts)
    if gshape[0] < info.height or gshape[1] < info.width:
        raise InputError(
            f"{gpath}: the guide ({gshape[1]}x{gshape[0]}) is smaller than the map {src} "
            f"({info.width}x{info.height}); are LOWRES and GUIDE swapped?"
        )
    n_out = size[0] * size[1]
    need = n_out * (info.channels * OUT_BYTES_PER_PIXEL_CHANNEL + OUT_MASK_BYTES_PER_PIXEL)
    need += gshape[0] * gshape[1] * GUIDE_BYTES_PER_PIXEL
    if tuple(gshape[:2]) != size:
        need += n_out * 12  # the guide resized to the output size (float32 RGB)
    check_memory(src, need, "guided upsampling")
    values, info = read_map(src)
    guide = read_image(gpath)
    if guide.ndim == 3 and guide.shape[2] in (2, 4):  # drop alpha
        guide = guide[:, :, :-1]
    vectors = opts.vectors if opts.vectors is not None else info.format == "flo"
    if vectors and (values.ndim != 3 or values.shape[2] != 2):
        raise InputError(f"{src}: --vectors needs a two-channel (u, v) map, got {info.channels} channel(s)")
    mask = None
    if info.format == "flo" or vectors:
        mask = np.all(np.abs(np.nan_to_num(values, nan=0.0)) < FLOW_UNKNOWN, axis=-1)
    if opts.invalid == "0":
        zero = values == 0 if values.ndim == 2 else np.all(values == 0, axis=2)
        mask = ~zero if mask is None else mask & ~zero
    try:
        y = guided_upsample(
            values,
            guide,
            size,
            method=opts.method,
            mask=mask,
            sigma_spatial=opts.sigma_spatial,
            sigma_range=opts.sigma_range,
        )
    except ValueError as e:
        raise InputError(f"{src}: {e}") from None
    del values
    if vectors:
        y[..., 0] *= np.float32(size[1] / info.width)
        y[..., 1] *= np.float32(size[0] / info.height)
    holes = np.isnan(y)
    if holes.any():
        fill = 0.0 if opts.invalid == "0" or info.dtype.startswith(("uint", "int")) else np.nan
        if info.format == "flo":
            fill = 1e10  # .flo's "unknown"
        y[holes] = fill
    write_map(dst, y, like=info, overwrite=opts.overwrite)
    if opts.preview:
        write_image(opts.preview, _preview(y, holes, guide), overwrite=opts.overwrite)


def _preview(y, holes, guide) -> np.ndarray:
    """The guide and the colour-mapped result side by side (8-bit RGB)."""
    from pafu_cli.filters.pac.resample import resize
    from pafu_cli.io.maps import preview_map

    pic = preview_map(np.where(holes, np.nan, y) if holes.any() else y)
    g = guide if guide.ndim == 3 else np.repeat(guide[:, :, None], 3, axis=2)
    if g.dtype != np.uint8:
        g = (g.astype(np.float32) * np.float32(255 / 65535) + 0.5).astype(np.uint8)
    if g.shape[:2] != pic.shape[:2]:
        g = (np.clip(resize(g, pic.shape[:2], "bilinear"), 0, 255) + 0.5).astype(np.uint8)
    return np.concatenate([g, pic], axis=1)

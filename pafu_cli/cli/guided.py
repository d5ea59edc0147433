"""``pafu guided-upsample``."""

from __future__ import annotations

import re

import click

from pafu_cli.cli.options import Failure, jobs_opt, overwrite_opt, run_job, scheduler_opt


def _size(value):
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT (e.g. 640x480)")
    return int(m.group(2)), int(m.group(1))  # (rows, columns)


@click.command("guided-upsample", short_help="Upsample depth, flow or any map guided by a photo.")
@click.argument("lowres", nargs=1, metavar="LOWRES")
@click.argument("guide", nargs=1, metavar="GUIDE")
@click.argument("output", metavar="OUT")
@click.option(
    "--scale",
    "-s",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "2", "3", "4", "8", "16"]),
    help="Upscale factor; auto: to the guide's size (any ratio).",
)
@click.option("--size", default=None, metavar="WxH", help="Output size in pixels (instead of --scale).")
@click.option(
    "--method",
    "-m",
    default=None,
    metavar="MODEL|jbu|bicubic|bilinear",
    help="A learned model (default: the shipped guided_upsample; or a .npz made by 'pafu train "
    "--task guided_upsample'); jbu: joint bilateral upsampling (follows the guide's edges, no model); "
    "bicubic, bilinear: unguided.",
)
@click.option(
    "--invalid",
    type=click.Choice(["nan", "0"]),
    default="nan",
    show_default=True,
    help="What marks a hole in LOWRES (NaN always does): holes are filled from valid neighbours only.",
)
@click.option(
    "--vectors/--no-vectors",
    default=None,
    help="Scale two-channel values with the size, as motion vectors (default: for .flo files).",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=True),
    default=None,
    help="Also write the guide and the colour-mapped result side by side (PNG/TIFF/JPEG). "
    "In batch runs, a folder: one <name>_preview.png per map.",
)
@click.option(
    "--sigma-spatial", type=click.FloatRange(min=0.05), default=None, help="With -m jbu: low-res pixels."
)
@click.option(
    "--sigma-range",
    type=click.FloatRange(min=1e-3),
    default=None,
    help="With -m jbu: guide units (1 = full scale).",
)
@overwrite_opt
@jobs_opt
@scheduler_opt
@click.pass_context
def guided_cmd(ctx, lowres, guide, output, **o):
    """Upsample a low-resolution map LOWRES (depth, disparity, optical flow, ...)
    guided by the full-resolution image GUIDE. OUT keeps LOWRES's format, units
    and bit depth (.png/.tif 8/16-bit or float, .npy, .pfm, .flo).

    \b
    Batch: LOWRES a folder or a quoted pattern, GUIDE a folder (paired by file
    stem: 01_depth.png with 01.png or 01_rgb.png), OUT a folder.

    \b
    Examples:
      $ pafu guided-upsample depth_lr.png photo.jpg depth.png
      $ pafu guided-upsample -m jbu --sigma-range 0.1 depth_lr.png photo.jpg depth.png
      $ pafu guided-upsample -s 8 --invalid 0 --preview view.png tof.png rgb.png depth.png
      $ pafu guided-upsample flow_lr.flo frame.png flow.flo
      $ pafu guided-upsample -j 2 'scans/*_depth.png' scans/ upsampled/
    """
    from pathlib import Path

    from pafu_cli.io.maps import MAP_EXTENSIONS
    from pafu_cli.jobs.guided import GuidedOptions, check_options, guided_file

    if o["size"] is not None and o["scale"] != "auto":
        raise Failure("give --scale or --size, not both", exit_code=2)
    method = o["method"] or GuidedOptions.method
    if method != "jbu" and (o["sigma_spatial"] is not None or o["sigma_range"] is not None):
        raise Failure("--sigma-spatial and --sigma-range set JBU's bandwidths: add -m jbu", exit_code=2)
    preview = o["preview"]
    opts = GuidedOptions(
        guide=guide,
        scale=None if o["scale"] == "auto" else int(o["scale"]),
        size=_size(o["size"]),
        method=method,
        invalid=o["invalid"] if o["invalid"] == "0" else None,
        vectors=o["vectors"],
        preview=preview,
        sigma_spatial=o["sigma_spatial"],
        sigma_range=o["sigma_range"],
        overwrite=o["overwrite"],
    )
    folder = None
    if preview is not None and not (Path(lowres).is_file() and Path(output).suffix):
        folder = Path(preview)  # a batch: --preview names a folder
    run_job(
        guided_file,
        (lowres,),
        output,
        opts,
        MAP_EXTENSIONS,
        None,
        o["jobs"],
        folder,
        ctx,
        check=check_options,
        side=("preview", "_preview.png"),
        scheduler=o["scheduler"],
    )

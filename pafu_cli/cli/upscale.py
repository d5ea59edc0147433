"""``pafu upscale``."""

from __future__ import annotations

import click

from pafu_cli.cli.options import (
    Failure,
    bits_opt,
    jobs_opt,
    model_opt,
    overwrite_opt,
    run_job,
    scheduler_opt,
    selection_opt,
)


@click.command("upscale", short_help="Upscale images by 2, 3 or 4.")
@click.option("--scale", "-s", type=click.Choice(["2", "3", "4"]), required=True, help="Upscale factor.")
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@click.argument("output", metavar="OUT")
@model_opt(
    "Upscale model: a shipped name, 'nearest', 'bilinear' or a .npz file (default: the shipped upscale_xS)."
)
@click.option(
    "--quality",
    "-q",
    type=click.Choice(["fast", "standard", "high"]),
    default=None,
    help="Shipped model by quality (instead of --model): fast (one kernel per pixel), standard "
    "(the default: two kernels blended), high (a small non-linear PAFU network; slower).",
)
@click.option(
    "--ensemble", is_flag=True, help="x8 self-ensemble: run on the 8 flips/rotations and average (8x slower)."
)
@click.option(
    "--chunks",
    type=click.IntRange(min=64),
    default=None,
    metavar="N",
    help="Images larger than memory: read (TIFF: in parts), upscale and write in N x N input chunks "
    "with Dask on this machine's cores (needs pafu[dask]; same output).",
)
@bits_opt
@selection_opt
@overwrite_opt
@jobs_opt
@scheduler_opt
@click.pass_context
def upscale_cmd(ctx, scale, inputs, output, **o):
    """Upscale PNG/TIFF/JPEG images (8 or 16 bits, grey or RGB; alpha is
    upscaled bilinearly).

    \b
    Examples:
      $ pafu upscale -s 2 photo.png photo_x2.png
      $ pafu upscale -s 2 --quality high photo.png photo_x2.png
      $ pafu upscale -s 4 --ensemble --selection-map sel.png in.tif out.tif
      $ pafu upscale -s 3 -j 2 'frames/*.png' frames_x3/
      $ pafu upscale -s 4 --chunks 1024 scan.tif scan_x4.tif
      $ pafu upscale -s 2 --scheduler tcp://10.0.0.5:8786 /shared/frames /shared/frames_x2
    """
    from pafu_cli.jobs.upscale import UpscaleOptions, check_options, upscale_file

    selection_map = o["selection_map"]
    if o["quality"]:
        if o["model"] is not None:
            raise click.UsageError("give either --model or --quality, not both")
        from pafu_cli.errors import PafuError
        from pafu_cli.models.registry import quality_model

        try:
            o["model"] = quality_model("upscale", int(scale), o["quality"])
        except PafuError as e:
            raise Failure(str(e), exit_code=2) from None
    if o["chunks"] and (o["ensemble"] or selection_map):
        raise click.UsageError("--chunks works without --ensemble and --selection-map")
    if o["chunks"]:
        try:
            import dask.array  # noqa: F401
            import zarr  # noqa: F401
        except ImportError:
            raise Failure("--chunks needs Dask: pip install 'pafu[dask]'", exit_code=2) from None
    opts = UpscaleOptions(
        scale=int(scale),
        model=o["model"],
        ensemble=o["ensemble"],
        bits=int(o["bits"]) if o["bits"] else None,
        selection_map=str(selection_map) if selection_map else None,
        overwrite=o["overwrite"],
        chunks=o["chunks"],
    )
    run_job(
        upscale_file,
        inputs,
        output,
        opts,
        _upscale_exts(),
        ".png",
        o["jobs"],
        selection_map,
        ctx,
        check=check_options,
        scheduler=o["scheduler"],
    )


def _upscale_exts():
    from pafu_cli.io.images import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS

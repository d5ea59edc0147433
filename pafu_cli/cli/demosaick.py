"""``pafu demosaick``."""

from __future__ import annotations

from pathlib import Path

import click

from pafu_cli.cfa import PATTERNS
from pafu_cli.cli.options import (
    DENOISE_CHOICES,
    GAMMAS,
    WB_CHOICES,
    Failure,
    bits_opt,
    jobs_opt,
    model_opt,
    overwrite_opt,
    run_job,
    scheduler_opt,
    selection_opt,
)
from pafu_cli.models.choice import COLOUR_CHOICES


@click.command("demosaick", short_help="Render RAW files (or demosaick mosaic images).")
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@click.argument("output", metavar="OUT")
@model_opt(
    "Demosaick model: a shipped name (see `pafu models`), 'bilinear' "
    "(LibRaw LINEAR) or a .npz file. Overrides --denoise."
)
@click.option(
    "--denoise",
    type=click.Choice(DENOISE_CHOICES),
    default="auto",
    show_default=True,
    help="Use the joint demosaick+denoise model: 'auto' decides from ISO and a noise "
    "estimate (-v says which).",
)
@click.option(
    "--quality",
    "-q",
    type=click.Choice(["standard", "high"]),
    default="standard",
    show_default=True,
    help="'high': the picked model's non-linear PAFU network where one is shipped "
    "(demosaick_high, demosaick_denoise_s5_high, demosaick_denoise_s10_high: 2.8-5.4x the "
    "demosaicking time); the vivid twins have none.",
)
@click.option(
    "--colours",
    type=click.Choice(COLOUR_CHOICES),
    default="auto",
    show_default=True,
    help="'vivid': the model's twin trained for saturated colours (flowers, "
    "stained glass, stage light), 'natural' for ordinary photographs; 'auto' "
    "picks per picture by its colourfulness (-v says which).",
)
@click.option(
    "--pattern",
    type=click.Choice(PATTERNS, case_sensitive=False),
    default=None,
    help="CFA pattern of a mosaic PNG/TIFF input (RAW files carry their own).",
)
@click.option(
    "--wb",
    type=click.Choice(WB_CHOICES),
    default="camera",
    show_default=True,
    help="White balance: as shot (falls back to auto when missing), daylight, or automatic grey world.",
)
@click.option(
    "--bright",
    type=click.FloatRange(min=0.01, max=100),
    default=1.0,
    show_default=True,
    help="Brightness multiplier (as LibRaw's -b).",
)
@click.option(
    "--auto-bright/--no-auto-bright",
    default=True,
    show_default=True,
    help="Scale so that about 1% of pixels clip (LibRaw's default).",
)
@click.option(
    "--gamma",
    type=click.Choice(sorted(GAMMAS)),
    default="srgb",
    show_default=True,
    help="Output transfer curve.",
)
@click.option(
    "--linear",
    is_flag=True,
    help="Linear output for further editing: --gamma linear --no-auto-bright, 16 bits.",
)
@bits_opt
@selection_opt
@overwrite_opt
@jobs_opt
@scheduler_opt
@click.pass_context
def demosaick_cmd(ctx, inputs, output, **options):
    """Demosaick camera RAW files into PNG/TIFF pictures, with a PAFU model inside
    LibRaw's rendering (black/white levels, white balance, colour matrix,
    brightness, gamma, orientation).

    IN is a RAW file (DNG, CR2, NEF, ARW, RW2, ORF, PEF, CRW, KDC, ...), a folder
    or a glob; or a one-channel mosaic PNG/TIFF with --pattern (no colour
    processing: the output keeps the mosaic's values). OUT's extension picks
    PNG or TIFF; with several inputs OUT is a folder.

    \b
    Examples:
      $ pafu demosaick samples/canon_eos550d_colorchart.dng chart.png
      $ pafu -v demosaick --linear --model bilinear photo.dng photo.tif
      $ pafu demosaick --pattern RGGB mosaic16.png rgb16.png
      $ pafu demosaick -j 2 raw_folder/ out_folder/
      $ pafu demosaick --scheduler local:2 raw_folder/ out_folder/
    """
    from pafu_cli.jobs.demosaick import DemosaickOptions, check_options, demosaick_file

    o = dict(options)
    jobs, linear, scheduler = o.pop("jobs"), o.pop("linear"), o.pop("scheduler")
    if linear:
        o["gamma"], o["auto_bright"] = "linear", False
        o["bits"] = o["bits"] or "16"
    if o["model"] is not None and o["denoise"] == "on":
        raise click.UsageError("give either --model or --denoise on, not both")
    if o["model"] is not None and o["quality"] != "standard":
        raise click.UsageError("give either --model or --quality, not both")
    if o["quality"] != "standard":
        from pafu_cli.errors import PafuError
        from pafu_cli.models.registry import quality_model

        try:
            quality_model("demosaick", 1, o["quality"])
        except PafuError as e:
            raise Failure(str(e), exit_code=2) from None
    out_ext = Path(output).suffix.lower()
    if out_ext in (".jpg", ".jpeg"):
        raise click.BadParameter(
            "JPEG output is not offered for demosaicking; use .png or .tif", param_hint="OUT"
        )
    if o["bits"] is None and out_ext in (".tif", ".tiff") and o["pattern"] is None:
        o["bits"] = "16"
    selection_map = o["selection_map"]
    opts = DemosaickOptions(
        **{
            **o,
            "pattern": o["pattern"].upper() if o["pattern"] else None,
            "bits": int(o["bits"]) if o["bits"] else None,
            "selection_map": str(selection_map) if selection_map else None,
        }
    )
    run_job(
        demosaick_file,
        inputs,
        output,
        opts,
        _demosaick_exts(),
        ".png",
        jobs,
        selection_map,
        ctx,
        check=check_options,
        scheduler=scheduler,
    )


def _demosaick_exts():
    from pafu_cli.raw.read import RAW_EXTENSIONS

    return RAW_EXTENSIONS + (".png", ".tif", ".tiff")

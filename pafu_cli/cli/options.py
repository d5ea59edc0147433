"""Options shared by several commands, and :func:`run_job`, which wires inputs to a
file job and turns a ``PafuError`` into one ``Error:`` line (exit 1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

# Choices, kept here so that `--help` needs no heavy imports.
DENOISE_CHOICES = ("auto", "off", "on")


WB_CHOICES = ("camera", "daylight", "auto")


GAMMAS = ("srgb", "bt709", "linear")


def model_opt(help_text):
    return click.option("--model", "-m", default=None, metavar="NAME|FILE.npz", help=help_text)


bits_opt = click.option(
    "--bits",
    type=click.Choice(["8", "16"]),
    default=None,
    help="Output bits per sample (default: 8 for PNG/JPEG RAW renders, "
    "16 for TIFF; the input's depth for mosaics and upscaling).",
)


overwrite_opt = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")


jobs_opt = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Files processed in parallel (batch runs).",
)


selection_opt = click.option(
    "--selection-map",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a picture of the kernel chosen at each pixel (colour = kernel index). "
    "In batch runs, a folder: one <name>_selection.png per input.",
)


def run_job(job, inputs, output, opts, extensions, default_ext, jobs, selection_map, ctx):
    """Wire inputs -> job -> outputs; PafuError becomes one 'Error:' line, exit 1."""
    from pafu_cli.errors import PafuError
    from pafu_cli.jobs import batch

    quiet = ctx.find_root().obj.get("quiet", 0) > 0
    try:
        files = batch.expand_inputs(inputs, extensions)
        pairs = batch.plan(files, output, default_ext)
        single = (
            len(inputs) == 1 and len(pairs) == 1 and Path(inputs[0]).is_file() and pairs[0][1] == Path(output)
        )
        if single:
            job(pairs[0][0], pairs[0][1], opts)
            return
        per_file = None
        if selection_map is not None:
            selection_map.mkdir(parents=True, exist_ok=True)

            def per_file(src, dst):
                return dataclasses.replace(
                    opts, selection_map=str(selection_map / f"{src.stem}_selection.png")
                )

        report = batch.run(
            job, pairs, opts, overwrite=opts.overwrite, jobs=jobs, quiet=quiet, selection_for=per_file
        )
    except PafuError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"{e.filename or ''}: {e.strerror or e}") from None
    click.echo(
        f"{len(report.done)} written, {len(report.skipped)} skipped (exist), {len(report.failed)} failed",
        err=True,
    )
    if report.failed:
        for _src, msg in report.failed:
            click.echo(f"  failed: {msg}", err=True)
        raise click.ClickException(f"{len(report.failed)} of {len(pairs)} files failed")

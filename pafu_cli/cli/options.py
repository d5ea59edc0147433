"""Options shared by several commands, and :func:`run_job`, which wires inputs to a
file job and turns a ``PafuError`` into one ``Error:`` line (exit 1)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import click

from pafu_cli.errors import one_line

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


scheduler_opt = click.option(
    "--scheduler",
    envvar="PAFU_SCHEDULER",
    default=None,
    metavar="ADDRESS",
    help="Send the files to a Dask cluster: its scheduler's address (tcp://host:8786), or "
    "local:N to start N worker processes here (needs pafu[dask]; env PAFU_SCHEDULER).",
)


selection_opt = click.option(
    "--selection-map",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a picture of the kernel chosen at each pixel (colour = kernel index). "
    "In batch runs, a folder: one <name>_selection.png per input.",
)


class Failure(click.ClickException):
    """One ``Error:`` line on stderr and an exit status (1, or 2 for a bad setting)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(one_line(message))
        self.exit_code = exit_code


def run_job(
    job,
    inputs,
    output,
    opts,
    extensions,
    default_ext,
    jobs,
    selection_map,
    ctx,
    check=None,
    side=("selection_map", "_selection.png"),
    *,
    scheduler=None,
):
    """Wire inputs -> job -> outputs. A ``PafuError`` (or any unexpected failure)
    becomes one ``Error:`` line naming the file, exit 1; a bad ``PAFU_*`` setting
    exit 2, before any file is touched. ``check(opts)`` validates what all files
    share (the model) once, first: a bad model is one line, not one per file.
    ``default_ext`` None keeps each input's extension. In a batch, the side
    output named by ``selection_map`` is a folder: option ``side[0]`` of each
    file becomes ``<folder>/<input stem><side[1]>``. ``scheduler``: run the
    files on a Dask cluster (:mod:`pafu_cli.dask.cluster`), a single one too;
    it is reached (or the local cluster started) before any output folder is made."""
    from pafu_cli.errors import ConfigError, PafuError
    from pafu_cli.jobs import batch
    from pafu_cli.limits import check_environment

    quiet = ctx.find_root().obj.get("quiet", 0) > 0
    try:
        check_environment()
        if scheduler:
            from pafu_cli.dask.cluster import check_address, distributed_module

            scheduler = check_address(scheduler)
            distributed_module()  # installed?
    except ConfigError as e:
        raise Failure(str(e), exit_code=2) from None
    try:
        if check is not None:
            check(opts)
        files = batch.expand_inputs(inputs, extensions)
        with contextlib.ExitStack() as stack:
            if scheduler:
                from pafu_cli.dask.cluster import Connection

                scheduler = stack.enter_context(Connection(scheduler))
            pairs = batch.plan(files, output, default_ext)
            single = (
                len(inputs) == 1
                and len(pairs) == 1
                and Path(inputs[0]).is_file()
                and pairs[0][1] == Path(output)
            )
            if single and not scheduler:
                error = batch.run_one(job, pairs[0][0], pairs[0][1], opts)
                if error:
                    raise Failure(error)
                return
            per_file = None
            if selection_map is not None and not single:
                selection_map.mkdir(parents=True, exist_ok=True)

                def per_file(src, dst):
                    return dataclasses.replace(opts, **{side[0]: str(selection_map / f"{src.stem}{side[1]}")})

            report = batch.run(
                job,
                pairs,
                opts,
                overwrite=opts.overwrite,
                jobs=jobs,
                quiet=quiet,
                selection_for=per_file,
                scheduler=scheduler,
            )
    except PafuError as e:
        raise Failure(str(e)) from None
    except OSError as e:
        raise Failure(f"{e.filename or ''}: {e.strerror or e}") from None
    click.echo(
        f"{len(report.done)} written, {len(report.skipped)} skipped (exist), {len(report.failed)} failed",
        err=True,
    )
    if report.failed:
        for _src, msg in report.failed:
            click.echo(f"  failed: {one_line(msg)}", err=True)
        raise Failure(f"{len(report.failed)} of {len(pairs)} files failed")

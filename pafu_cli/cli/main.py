"""The ``pafu`` command group: logging, version, the commands, and :func:`entry`.

Exit codes: 0 success, 1 runtime failure (bad input, bad model, refused
overwrite), 2 usage error."""

from __future__ import annotations

import logging
import sys

import click

from pafu_cli import __version__, _runtime
from pafu_cli.cli import _process
from pafu_cli.cli.demosaick import demosaick_cmd
from pafu_cli.cli.evaluate import evaluate_cmd
from pafu_cli.cli.guided import guided_cmd
from pafu_cli.cli.models import models_cmd
from pafu_cli.cli.train import train_cmd
from pafu_cli.cli.upscale import upscale_cmd

log = logging.getLogger("pafu")


def _version_message() -> str:
    import platform

    return f"pafu {__version__} (Python {platform.python_version()})"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, message=_version_message())
@click.option("-v", "--verbose", count=True, help="More messages on stderr (repeatable).")
@click.option("-q", "--quiet", count=True, help="Fewer messages on stderr.")
@click.pass_context
def main(ctx, verbose, quiet):
    """Content-adaptive filtering (PAFU, PAC): demosaick RAW files, upscale images,
    upsample depth and flow maps guided by a photo.

    \b
    Exit status: 0 success, 1 runtime failure, 2 usage error.
    """
    _runtime.configure_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


for _command in (models_cmd, demosaick_cmd, upscale_cmd, guided_cmd, train_cmd, evaluate_cmd):
    main.add_command(_command)


def entry() -> None:
    """The ``pafu`` console script: the process tuned (:func:`_process.tune`),
    :func:`main`, then a quick exit (:func:`_process.quick_exit`). Code that
    imports :func:`main` (tests, other programs) keeps the normal process."""
    _process.tune()
    try:
        main(prog_name="pafu")
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            sys.stderr.write(f"{e.code}\n")
            code = 1
    _process.quick_exit(code)

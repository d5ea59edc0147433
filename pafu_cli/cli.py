"""The ``pafu`` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 runtime failure (bad input, bad model, refused
overwrite), 2 usage error.
"""

from __future__ import annotations

import logging
import sys

import click

from . import __version__

log = logging.getLogger("pafu")


def _configure_logging(verbose: int, quiet: int) -> None:
    level = max(logging.DEBUG, logging.WARNING - 10 * verbose + 10 * quiet)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s", force=True)


def _version_message() -> str:
    import platform

    return f"pafu {__version__} (Python {platform.python_version()})"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, message=_version_message())
@click.option("-v", "--verbose", count=True, help="More messages on stderr (repeatable).")
@click.option("-q", "--quiet", count=True, help="Fewer messages on stderr.")
@click.pass_context
def main(ctx, verbose, quiet):
    """Content-adaptive linear filtering (PAFU): demosaick RAW files, upscale images.

    \b
    Exit status: 0 success, 1 runtime failure, 2 usage error.
    """
    _configure_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


@main.command("models", short_help="List the shipped models.")
def models_cmd():
    """List the shipped models with task, scale, kernels and measured quality.

    \b
    Example:
      $ pafu models
    """
    from .errors import ModelError
    from .models import list_models, load_model, models_dir

    for name in list_models():
        path = models_dir() / f"{name}.npz"
        try:
            m = load_model(path)
        except ModelError as e:
            click.echo(f"{name}: unusable ({e})")
            continue
        sizes = "/".join(f"{k}x{k}" for k in sorted(set(m.kernel_sizes.tolist())))
        q = m.quality.get("test", {})
        qtxt = ", ".join(f"{k} {v:.2f} dB" for k, v in q.items()) if q else "not measured"
        click.echo(f"{name}: {m.task} x{m.scale}, {m.n_kernels} kernels {sizes}, "
                   f"{len(m.selector_weights)}-layer selector; {qtxt}")


def _register():
    from ._cli_train import train_cmd

    main.add_command(train_cmd)


_register()

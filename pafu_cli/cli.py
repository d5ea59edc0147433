"""The ``pafu`` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 runtime failure (bad input, bad model, refused
overwrite), 2 usage error.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .bayer import PATTERNS
from .models import COLOUR_CHOICES

# Choices, kept here so that `--help` needs no heavy imports.
DENOISE_CHOICES = ("auto", "off", "on")
WB_CHOICES = ("camera", "daylight", "auto")
GAMMAS = ("srgb", "bt709", "linear")

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
        blend = ", two blended per pixel" if m.mix == 2 else ""
        click.echo(f"{name}: {m.task} x{m.scale}, {m.n_kernels} kernels {sizes}{blend}, "
                   f"{len(m.selector_weights)}-layer selector; {qtxt}")


# --- shared options ----------------------------------------------------------

def _model_opt(help_text):
    return click.option("--model", "-m", default=None, metavar="NAME|FILE.npz", help=help_text)


_bits_opt = click.option("--bits", type=click.Choice(["8", "16"]), default=None,
                         help="Output bits per sample (default: 8 for PNG/JPEG RAW renders, "
                              "16 for TIFF; the input's depth for mosaics and upscaling).")
_overwrite_opt = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
_jobs_opt = click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
                         help="Files processed in parallel (batch runs).")
_selection_opt = click.option(
    "--selection-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Also write a picture of the kernel chosen at each pixel (colour = kernel index). "
         "In batch runs, a folder: one <name>_selection.png per input.")


def _run(job, inputs, output, opts, extensions, default_ext, jobs, selection_map, ctx):
    """Wire inputs -> job -> outputs; PafuError becomes one 'Error:' line, exit 1."""
    from . import batch
    from .errors import PafuError

    quiet = ctx.find_root().obj.get("quiet", 0) > 0
    try:
        files = batch.expand_inputs(inputs, extensions)
        pairs = batch.plan(files, output, default_ext)
        single = len(inputs) == 1 and len(pairs) == 1 and Path(inputs[0]).is_file() \
            and pairs[0][1] == Path(output)
        if single:
            job(pairs[0][0], pairs[0][1], opts)
            return
        per_file = None
        if selection_map is not None:
            selection_map.mkdir(parents=True, exist_ok=True)

            def per_file(src, dst):
                return dataclasses.replace(
                    opts, selection_map=str(selection_map / f"{src.stem}_selection.png"))
        report = batch.run(job, pairs, opts, overwrite=opts.overwrite, jobs=jobs, quiet=quiet,
                           selection_for=per_file)
    except PafuError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"{e.filename or ''}: {e.strerror or e}") from None
    click.echo(f"{len(report.done)} written, {len(report.skipped)} skipped (exist), "
               f"{len(report.failed)} failed", err=True)
    if report.failed:
        for src, msg in report.failed:
            click.echo(f"  failed: {msg}", err=True)
        raise click.ClickException(f"{len(report.failed)} of {len(pairs)} files failed")


@main.command("demosaick", short_help="Render RAW files (or demosaick mosaic images).")
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@click.argument("output", metavar="OUT")
@_model_opt("Demosaick model: a shipped name (see `pafu models`), 'bilinear' "
            "(LibRaw LINEAR) or a .npz file. Overrides --denoise.")
@click.option("--denoise", type=click.Choice(DENOISE_CHOICES), default="auto", show_default=True,
              help="Use the joint demosaick+denoise model: 'auto' decides from ISO and a noise "
                   "estimate (-v says which).")
@click.option("--colours", type=click.Choice(COLOUR_CHOICES), default="auto", show_default=True,
              help="'vivid': the model's twin trained for saturated colours (flowers, "
                   "stained glass, stage light), 'natural' for ordinary photographs; 'auto' "
                   "picks per picture by its colourfulness (-v says which).")
@click.option("--pattern", type=click.Choice(PATTERNS, case_sensitive=False), default=None,
              help="CFA pattern of a mosaic PNG/TIFF input (RAW files carry their own).")
@click.option("--wb", type=click.Choice(WB_CHOICES), default="camera", show_default=True,
              help="White balance: as shot (falls back to auto when missing), daylight, or "
                   "automatic grey world.")
@click.option("--bright", type=click.FloatRange(min=0.01, max=100), default=1.0, show_default=True,
              help="Brightness multiplier (as LibRaw's -b).")
@click.option("--auto-bright/--no-auto-bright", default=True, show_default=True,
              help="Scale so that about 1% of pixels clip (LibRaw's default).")
@click.option("--gamma", type=click.Choice(sorted(GAMMAS)), default="srgb", show_default=True,
              help="Output transfer curve.")
@click.option("--linear", is_flag=True,
              help="Linear output for further editing: --gamma linear --no-auto-bright, 16 bits.")
@_bits_opt
@_selection_opt
@_overwrite_opt
@_jobs_opt
@click.pass_context
def demosaick_cmd(ctx, inputs, output, model, denoise, colours, pattern, wb, bright, auto_bright, gamma,
                  linear, bits, selection_map, overwrite, jobs):
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
    """
    from .pipeline import DemosaickOptions, demosaick_file

    if linear:
        gamma, auto_bright = "linear", False
        bits = bits or "16"
    if model is not None and denoise == "on":
        raise click.UsageError("give either --model or --denoise on, not both")
    out_ext = Path(output).suffix.lower()
    if out_ext in (".jpg", ".jpeg"):
        raise click.BadParameter("JPEG output is not offered for demosaicking; use .png or .tif",
                                 param_hint="OUT")
    if bits is None and out_ext in (".tif", ".tiff") and pattern is None:
        bits = "16"
    opts = DemosaickOptions(model=model, denoise=denoise, colours=colours, pattern=pattern.upper() if pattern else None,
                            wb=wb, auto_bright=auto_bright, bright=bright, gamma=gamma,
                            bits=int(bits) if bits else None,
                            selection_map=str(selection_map) if selection_map else None,
                            overwrite=overwrite)
    _run(demosaick_file, inputs, output, opts, _demosaick_exts(), ".png", jobs, selection_map, ctx)


@main.command("upscale", short_help="Upscale images by 2, 3 or 4.")
@click.option("--scale", "-s", type=click.Choice(["2", "3", "4"]), required=True,
              help="Upscale factor.")
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@click.argument("output", metavar="OUT")
@_model_opt("Upscale model: a shipped name, 'nearest', 'bilinear' or a .npz file "
            "(default: the shipped upscale_xS).")
@click.option("--ensemble", is_flag=True,
              help="x8 self-ensemble: run on the 8 flips/rotations and average (8x slower).")
@_bits_opt
@_selection_opt
@_overwrite_opt
@_jobs_opt
@click.pass_context
def upscale_cmd(ctx, scale, inputs, output, model, ensemble, bits, selection_map, overwrite, jobs):
    """Upscale PNG/TIFF/JPEG images (8 or 16 bits, grey or RGB; alpha is
    upscaled bilinearly).

    \b
    Examples:
      $ pafu upscale -s 2 photo.png photo_x2.png
      $ pafu upscale -s 4 --ensemble --selection-map sel.png in.tif out.tif
      $ pafu upscale -s 3 -j 2 'frames/*.png' frames_x3/
    """
    from .pipeline import UpscaleOptions, upscale_file

    opts = UpscaleOptions(scale=int(scale), model=model, ensemble=ensemble,
                          bits=int(bits) if bits else None,
                          selection_map=str(selection_map) if selection_map else None,
                          overwrite=overwrite)
    _run(upscale_file, inputs, output, opts, _upscale_exts(), ".png", jobs, selection_map, ctx)


def _demosaick_exts():
    from .io import RAW_EXTENSIONS

    return RAW_EXTENSIONS + (".png", ".tif", ".tiff")


def _upscale_exts():
    from .io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def _register():
    from ._cli_eval import evaluate_cmd
    from ._cli_train import train_cmd

    main.add_command(train_cmd)
    main.add_command(evaluate_cmd)


_register()


def _no_huge_pages() -> None:
    """Ask NumPy not to mark big arrays for transparent huge pages.

    With the common kernel setting ``defrag=madvise``, a page fault in a marked
    region waits for the kernel to assemble a 2 MB page, which on a machine
    with fragmented free memory took from 0.06 to 1.46 s per 576 MB (measured);
    unmarked memory gets 4 KB pages without waiting. A render touches its
    big buffers once, so the stalls cost more than the TLB savings: end to end
    on a 24 MP DNG, median of 7, 1.53 s -> 1.39 s. ``NUMPY_MADVISE_HUGEPAGE=1``
    restores NumPy's default.
    """
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core  # NumPy 2 / 1
    setter = getattr(getattr(multiarray, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


def _keep_freed_memory() -> None:
    """glibc only: serve blocks below 32 MB from the heap and keep freed memory.

    By default glibc maps big blocks afresh and returns freed heap tops to the
    system, so the engine's per-band scratch arrays (a few MB, allocated per
    band and thread) pay their page faults again and again: 61 000 faults in
    the first 24 MP demosaick (0.50 s; 0.30 s once they are gone, measured).
    A short-lived command gains from keeping what it freed.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest
    mallopt(m_trim_threshold, 1 << 30)


def entry() -> None:
    """The ``pafu`` console script: :func:`main`, then a quick exit.

    A process that has loaded the Numba kernels spends 0.13-0.32 s (measured,
    24 MP demosaick) in the interpreter's teardown, freeing compiled code it is
    about to drop anyway. The command's outputs are complete and closed when
    :func:`main` returns, so after flushing the standard streams and the
    logging handlers the process ends with :func:`os._exit`. Code that imports
    :func:`main` (tests, other programs) keeps the normal exit.
    """
    import os

    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        _no_huge_pages()
    _keep_freed_memory()
    # Numba's OpenMP workers sleep between parallel loops instead of spinning: the
    # command's serial steps (loading code while another thread decodes, writing)
    # then keep both cores (24 MP DNG -> TIFF, median of 9: 1.44 -> 1.33 s).
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        main(prog_name="pafu")
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(code)

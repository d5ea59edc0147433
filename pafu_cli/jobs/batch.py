"""Batch runs: expand inputs, name outputs, skip existing ones, progress, summary.

One failing file never stops the others: its error is collected and listed at
the end. ``jobs > 1`` runs files in separate processes ("spawn", so each has
its own Numba thread pool), each with ``cores // jobs`` Numba threads.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import glob
import logging
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pafu_cli.errors import InputError, OutputError, PafuError, one_line
from pafu_cli.io.images import IMAGE_EXTENSIONS
from pafu_cli.io.maps import MAP_EXTENSIONS

OUTPUT_EXTENSIONS = tuple(sorted(set(IMAGE_EXTENSIONS) | set(MAP_EXTENSIONS)))

log = logging.getLogger("pafu")


@dataclasses.dataclass
class Report:
    """What a batch did: outputs written, skipped (existing) and failed with reasons."""

    done: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (path, message)


def expand_inputs(items, extensions) -> list:
    """Files named by ``items``: files, folders (searched recursively) or glob patterns.

    Returns ``(path, relative)`` pairs: ``relative`` is the path below the
    folder it was found in (just the name for files and glob matches), so
    that outputs can mirror the input tree.

    Raises
    ------
    InputError
        A name that matches nothing, or a folder without matching files.
    """
    files = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
            if not found:
                raise InputError(f"{item}: folder holds no {'/'.join(sorted(set(extensions)))} files")
            files += [(f, f.relative_to(p)) for f in found]
        elif p.exists():
            if not p.is_file():
                raise InputError(f"{item}: not a regular file (a device, FIFO or socket); give an image file")
            files.append((p, Path(p.name)))
        elif glob.has_magic(str(item)):
            found = sorted(Path(f) for f in glob.glob(str(item)) if Path(f).is_file())
            if not found:
                raise InputError(f"{item}: pattern matches no files")
            files += [(f, Path(f.name)) for f in found]
        else:
            raise InputError(f"{item}: no such file or folder")
    seen, unique = set(), []
    for f, rel in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append((f, rel))
    return unique


def plan(inputs, output, default_ext, single_ok: bool = True):
    """Pairs (input, output) for a run.

    One input file and an OUT that is not an existing folder: OUT is the file.
    Otherwise OUT is a folder (created if missing) and each output is named
    after its input (in the same subfolder as below the input folder) with
    ``default_ext`` (None: the input's own), or OUT's extension if OUT is
    given as ``folder/*.tif``.
    """
    output = Path(output)
    ext = default_ext
    if output.name.startswith("*.") and output.suffix:
        ext, output = output.suffix, output.parent
    elif output.suffix.lower() in OUTPUT_EXTENSIONS:  # an image or map name is a file, always
        if len(inputs) == 1 and single_ok:
            return [(inputs[0][0], output)]
        raise InputError(
            f"{output}: names one image file, but {len(inputs)} inputs were given; "
            "give an output folder (or folder/*.tif to choose the format)"
        )
    elif output.suffix and not output.exists() and len(inputs) == 1 and single_ok:
        # One input and a name like out.bmp: a file of an unknown format, not a new folder.
        raise OutputError(
            f"{output}: unknown output extension {output.suffix!r}; name a .png/.tif/.jpg file "
            "(maps: also .npy/.pfm/.flo), or an existing folder"
        )
    elif output.exists() and not output.is_dir():
        if len(inputs) == 1 and single_ok and output.is_file():
            return [(inputs[0][0], output)]
        raise OutputError(f"{output}: not a folder or an image file name; give an output folder")
    # An output folder inside an input folder: never take earlier outputs as inputs.
    out_abs = output.resolve()
    inputs = [(f, rel) for f, rel in inputs if not f.resolve().is_relative_to(out_abs)]
    if not inputs:
        raise InputError(f"{output}: no inputs left outside the output folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{output}: cannot create the output folder ({e.strerror})") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: output folder is not writable")
    stems = {}
    for f, rel in inputs:
        key = output / rel.parent / f.stem
        stems[key] = stems.get(key, 0) + 1
    pairs, names = [], {}
    for f, rel in inputs:
        # Inputs that share a stem (photo.cr2, photo.dng) keep their suffix.
        base = f.stem if stems[output / rel.parent / f.stem] == 1 else f.name
        dst = output / rel.parent / (base + (f.suffix if ext is None else ext))
        if dst in names:
            raise InputError(f"{f} and {names[dst]} would both be written to {dst}; process them separately")
        names[dst] = f
        pairs.append((f, dst))
    for sub in sorted({d.parent for _, d in pairs} - {output}):
        try:
            sub.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{sub}: cannot create the output folder ({e.strerror})") from None
    return pairs


def _worker_init(threads: int, verbose: int, quiet: int) -> None:
    """Set up a batch worker process: its Numba threads, the CLI's signal and
    warning handling, and, on Linux, a SIGTERM when the parent process dies (so
    that a killed batch leaves no worker writing files behind it)."""
    if threads:
        import numba

        numba.set_num_threads(threads)
    from pafu_cli import _runtime

    _runtime.die_with_parent()
    _runtime.install(worker=True)
    _runtime.configure_logging(verbose, quiet)


def run_one(job, src, dst, opts):
    """``job(src, dst, opts)``; returns None, or the one-line reason it failed."""
    from pafu_cli import _runtime

    try:
        with _runtime.job():
            job(src, dst, opts)
    except PafuError as e:
        return str(e)
    except MemoryError:
        return f"{src}: out of memory; crop or downscale it first"
    except Exception as e:  # a bug, or a library failure pafu does not know: still one line
        return f"{src}: failed unexpectedly ({type(e).__name__}: {e}); please report this"
    return None


def run(
    job,
    pairs,
    opts,
    *,
    overwrite: bool,
    jobs: int = 1,
    quiet: bool = False,
    selection_for=None,
    scheduler=None,
) -> Report:
    """Run ``job(src, dst, opts)`` on every pair with a tqdm bar on stderr.

    ``selection_for(src, dst)`` gives per-file options (e.g. the selection map
    path) or None to use ``opts`` as is. ``scheduler``: an open
    :class:`pafu_cli.dask.cluster.Connection` to run the files on; ``jobs`` is
    then unused.
    """
    from tqdm import tqdm

    report = Report()
    todo = []
    for src, dst in pairs:
        if dst.exists() and not overwrite:
            report.skipped.append(dst)
            log.info("%s exists, skipped (use --overwrite to replace it)", dst)
        else:
            todo.append((src, dst, selection_for(src, dst) if selection_for else opts))
    bar = tqdm(total=len(todo), unit="file", disable=True if quiet else None, leave=False)
    try:
        if scheduler and todo:
            from pafu_cli.dask.cluster import run_batch

            run_batch(job, todo, scheduler, lambda s, d, e: _record(report, s, d, e), bar)
        elif jobs <= 1 or len(todo) <= 1:
            for src, dst, o in todo:
                bar.set_postfix_str(src.name, refresh=False)
                _record(report, src, dst, run_one(job, src, dst, o))
                bar.update()
        else:
            _run_pool(job, todo, jobs, report, bar)
    finally:
        bar.close()
    return report


def _run_pool(job, todo, jobs: int, report: Report, bar) -> None:
    """The files of ``todo`` on ``jobs`` worker processes ("spawn": each has its own
    Numba thread pool). A worker that dies takes only its file with it (it is
    reported as failed; the rest go on in a fresh pool). When this process is
    interrupted, the workers are stopped before it returns (their temporary
    files are removed by their own signal handling)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # The pool's queue locks are released by finalisers that a stopped batch does
    # not run; multiprocessing's resource tracker (a process of its own, started
    # with this environment) would then print a warning about them on stderr.
    quiet_tracker = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet_tracker not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(
            filter(None, [os.environ.get("PYTHONWARNINGS"), quiet_tracker])
        )
    verbose = (int(log.isEnabledFor(logging.INFO)), int(not log.isEnabledFor(logging.WARNING)))
    ctx = multiprocessing.get_context("spawn")
    pending = list(todo)
    while pending:
        pool = cf.ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, *verbose)
        )
        futures = {pool.submit(run_one, job, s, d, o): (s, d, o) for s, d, o in pending}
        pending = []
        try:
            for fut in cf.as_completed(futures):
                src, dst, o = futures[fut]
                try:
                    error = fut.result()
                except BrokenProcessPool:  # this file's worker (or a neighbour's) died
                    pending.append((src, dst, o))
                    continue
                _record(report, src, dst, error)
                bar.update()
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        if pending:  # run each survivor of a broken pool alone, so a crash is pinned on its file
            for src, dst, o in pending:
                _record(report, src, dst, _run_isolated(job, src, dst, o, ctx, threads, verbose))
                bar.update()
            pending = []


def _run_isolated(job, src, dst, opts, ctx, threads: int, verbose: tuple):
    with cf.ProcessPoolExecutor(
        1, mp_context=ctx, initializer=_worker_init, initargs=(threads, *verbose)
    ) as p:
        try:
            return p.submit(run_one, job, src, dst, opts).result()
        except BrokenProcessPool:
            return f"{src}: the worker process processing it died (out of memory or killed)"


def _stop(pool) -> None:
    """Cancel what has not started and end the running workers now."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def _record(report: Report, src, dst, error) -> None:
    if error is None:
        report.done.append(dst)
        log.info("%s -> %s", src, dst)
    else:
        report.failed.append((src, error))
        log.error("Error: %s", one_line(error))

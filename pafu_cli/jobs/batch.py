"""Batch runs: expand inputs, name outputs, skip existing ones, progress, summary.

One failing file never stops the others: its error is collected and listed at
the end. ``jobs > 1`` runs files in separate processes ("spawn", so each has
its own Numba thread pool), each with ``cores // jobs`` Numba threads.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import glob
import logging
import multiprocessing
import os
from pathlib import Path

from pafu_cli.errors import InputError, OutputError, PafuError

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


def plan(inputs, output, default_ext: str, single_ok: bool = True):
    """Pairs (input, output) for a run.

    One input file and an OUT that is not an existing folder: OUT is the file.
    Otherwise OUT is a folder (created if missing) and each output is named
    after its input (in the same subfolder as below the input folder) with
    ``default_ext``, or OUT's extension if OUT is given as ``folder/*.tif``.
    """
    output = Path(output)
    if single_ok and len(inputs) == 1 and not output.is_dir() and output.suffix:
        return [(inputs[0][0], output)]
    ext = default_ext
    if output.name.startswith("*.") and output.suffix:
        ext, output = output.suffix, output.parent
    # An output folder inside an input folder: never take earlier outputs as inputs.
    out_abs = output.resolve()
    inputs = [(f, rel) for f, rel in inputs if not f.resolve().is_relative_to(out_abs)]
    if not inputs:
        raise InputError(f"{output}: no inputs left outside the output folder")
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: several inputs need an output folder, not a file")
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
        dst = output / rel.parent / (base + ext)
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


def _run_one(job, src, dst, opts, threads):
    if threads:
        import numba

        numba.set_num_threads(threads)
    try:
        job(src, dst, opts)
    except PafuError as e:
        return str(e)
    except MemoryError:
        return f"{src}: out of memory; crop or downscale it first"
    return None


def run(
    job, pairs, opts, *, overwrite: bool, jobs: int = 1, quiet: bool = False, selection_for=None
) -> Report:
    """Run ``job(src, dst, opts)`` on every pair with a tqdm bar on stderr.

    ``selection_for(src, dst)`` gives per-file options (e.g. the selection map
    path) or None to use ``opts`` as is.
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
        if jobs <= 1 or len(todo) <= 1:
            for src, dst, o in todo:
                bar.set_postfix_str(src.name, refresh=False)
                _record(report, src, dst, _run_one(job, src, dst, o, 0))
                bar.update()
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = {pool.submit(_run_one, job, s, d, o, threads): (s, d) for s, d, o in todo}
                for fut in cf.as_completed(futures):
                    src, dst = futures[fut]
                    _record(report, src, dst, fut.result())
                    bar.update()
    finally:
        bar.close()
    return report


def _record(report: Report, src, dst, error) -> None:
    if error is None:
        report.done.append(dst)
        log.info("%s -> %s", src, dst)
    else:
        report.failed.append((src, error))
        log.error("Error: %s", error)

"""Batches of files on a ``dask.distributed`` cluster (``--scheduler``).

The client (the ``pafu`` command) plans the batch as for a local run (output
names, skip existing), then sends one task per file: the job function (by
reference), the two paths, made absolute, and the options, a few hundred bytes.
Each worker reads its input and writes its output itself, so the cluster's
machines must see the same file system (the same paths). A worker keeps what it
loaded (Numba's compiled kernels, each model file, read once: see
:func:`pafu_cli.models.registry.model_loads`) from one file to the next.

A worker that dies (killed, out of memory) takes nothing with it: the scheduler
gives its file to another worker (up to ``distributed.scheduler.allowed-failures``
times, 3 by default, then the file is reported as failed), the output is
published by an atomic rename only when complete, and the dead worker's
temporary file is removed when the file's task ends. A task whose output
exists already (its first worker died after publishing it) does not write it
again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import uuid
from pathlib import Path

from pafu_cli.errors import ConfigError, PafuError

log = logging.getLogger("pafu")

LOCAL = re.compile(r"^local(?::(\d+))?$")
CONNECT_TIMEOUT = "10s"
# Files submitted ahead of those finished: enough to keep thousands of workers busy,
# few enough that the client and the scheduler hold a bounded number of tasks.
IN_FLIGHT = 4096
# Numba threads of a local cluster's worker (set in the task: Numba may be imported in
# the worker process before the nanny's environment is applied, so NUMBA_NUM_THREADS
# would come too late).
WORKER_THREADS = "PAFU_WORKER_THREADS"


def distributed_module():
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--scheduler needs Dask's distributed scheduler: pip install 'pafu[dask]'"
        ) from None
    return distributed


def check_address(address: str) -> str:
    """``address`` checked: ``local[:N]`` or a scheduler address
    (``tcp://host:8786``, ``tls://...``, ``host:port``). Raises ConfigError."""
    address = address.strip()
    m = LOCAL.match(address)
    if m:
        if m.group(1) is not None and not 1 <= int(m.group(1)) <= 256:
            raise ConfigError(f"--scheduler {address}: local:N takes 1 to 256 workers")
        return address
    if address.startswith("local"):
        raise ConfigError(f"--scheduler {address}: write local:N with N a number of worker processes")
    if not re.match(r"^([a-z0-9+]+://)?[^\s/:]+(:\d+)?$", address):
        raise ConfigError(f"--scheduler {address}: not a scheduler address; give tcp://host:8786 or local:N")
    return address


class Connection:
    """A client of the scheduler at ``address``, or of a new local cluster for
    ``local:N`` (N worker processes, one file at a time each, with cores // N
    Numba threads; N defaults to the number of cores). A context manager that
    closes what it opened."""

    def __init__(self, address: str):
        self.address = check_address(address)
        self.cluster = None
        self.client = None

    def __enter__(self):
        distributed = distributed_module()
        m = LOCAL.match(self.address)
        try:
            if m:
                cores = os.cpu_count() or 1
                n = int(m.group(1) or cores)
                threads = str(max(1, cores // n))
                self.cluster = distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",  # any free port: a second cluster must not clash on 8787
                    silence_logs=50,  # logging.CRITICAL: a restarted worker is not news
                    env={WORKER_THREADS: threads, "OMP_WAIT_POLICY": "passive"},
                )
                self.client = distributed.Client(self.cluster)
            else:
                self.client = distributed.Client(self.address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            self.close()
            raise PafuError(
                f"{self.address}: cannot reach the Dask scheduler ({e}); start one with "
                "'dask scheduler' and workers with 'dask worker ADDRESS', or use --scheduler local:N"
            ) from None
        return self

    def close(self):
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a broken connection: nothing left to save
                    pass

    def __exit__(self, *exc):
        self.close()


def _absolute(opts):
    """``opts`` with every option that names a file or folder made absolute, so
    that a worker with another working directory finds it."""
    changes = {}
    for f in dataclasses.fields(opts):
        v = getattr(opts, f.name)
        if isinstance(v, (str, Path)) and str(v) and (Path(v).exists() or Path(v).suffix):
            changes[f.name] = str(Path(v).absolute())
    return dataclasses.replace(opts, **changes) if changes else opts


def _side_outputs(opts) -> list:
    return [getattr(opts, n) for n in ("selection_map", "preview") if getattr(opts, n, None)]


def run_on_worker(job, src, dst, opts, overwrite: bool):
    """One file on a worker: :func:`pafu_cli.jobs.batch.run_one`, except that an
    output that exists (an earlier attempt published it, then its worker died)
    counts as done."""
    from pafu_cli.jobs.batch import run_one

    if not overwrite and Path(dst).exists():
        return None
    threads = os.environ.get(WORKER_THREADS)
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return run_one(job, src, dst, opts)


def run_batch(job, todo, conn: Connection, record, bar) -> None:
    """The files of ``todo`` ((src, dst, opts) triples) on the cluster of the open
    connection ``conn``; ``record(src, dst, error)`` as each ends, ``bar`` advanced."""
    from pafu_cli.io.images import remove_temp_files_of

    distributed = distributed_module()
    client = conn.client
    if not client.scheduler_info().get("workers"):
        log.warning("%s: the scheduler has no workers yet; waiting for some to join", conn.address)
    futures = {}
    token = uuid.uuid4().hex[:12]  # keys unique to this run on a shared cluster
    pending = iter(enumerate(todo))

    def submit_next(queue) -> None:
        for i, (src, dst, o) in pending:
            o = _absolute(o)
            where = str(Path(src).absolute())
            fut = client.submit(
                run_on_worker,
                job,
                where,
                str(Path(dst).absolute()),
                o,
                getattr(o, "overwrite", False),
                pure=False,
                key=f"pafu-{token}-{i}-{Path(src).name}",
            )
            futures[fut] = (src, dst, o, where)
            queue.add(fut)
            return

    try:
        queue = distributed.as_completed()
        for _ in range(IN_FLIGHT):  # a window of tasks: a million files are not a million futures
            submit_next(queue)
        for fut in queue:
            src, dst, o, where = futures.pop(fut)
            submit_next(queue)
            try:
                error = fut.result()
            except distributed.KilledWorker:
                error = f"{src}: the workers processing it died each time (out of memory or killed)"
            except Exception as e:  # a failure outside the job (pickling, a lost worker)
                error = f"{src}: failed on the cluster ({type(e).__name__}: {e})"
            for path in (dst, *_side_outputs(o)):
                remove_temp_files_of(path)
            if error:  # name the file as the user did
                error = error.replace(where, str(src))
            record(src, dst, error)
            bar.update()
    except BaseException:
        client.cancel(list(futures))
        conn.close()  # a local cluster's workers end here
        for _src, dst, o, _ in futures.values():
            for path in (dst, *_side_outputs(o)):
                remove_temp_files_of(path)
        raise

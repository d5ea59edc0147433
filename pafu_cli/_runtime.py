"""How a pafu process meets signals, warnings and log messages: SIGTERM and SIGHUP
end it the way Ctrl-C does (the exception unwinds, temporary files are removed,
nothing is left half-written), batch workers die with their parent, and what the
libraries say (Pillow and NumPy warnings, tifffile's log) reaches stderr only
with ``-v``: without it, stderr holds pafu's own messages and ``Error:`` lines."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import warnings

_received: list = []
_worker = {"on": False, "busy": False}
_temporary: set = set()  # temporary output files this process is writing
GRACE_SECONDS = 3.0  # after a signal, the longest the unwinding may take


def track(path: str) -> None:
    """Record a temporary file being written (removed if the process is stopped)."""
    _temporary.add(path)


def untrack(path: str) -> None:
    _temporary.discard(path)


def _hard_exit(signum: int) -> None:
    """End the process now, removing the temporary files it was writing."""
    for path in list(_temporary):
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    # Ctrl-C of a command ends it with 1, as the KeyboardInterrupt path does
    os._exit(1 if signum == signal.SIGINT and not _worker["on"] else 128 + signum)


def _interrupt(signum, frame):
    _received.append(signum)
    if _worker["on"] and not _worker["busy"]:  # an idle batch worker: nothing to clean up
        os._exit(128 + signum)
    # A KeyboardInterrupt raised inside a callback from compiled code (Numba's
    # compiler calls back into Python) is swallowed there, and the process
    # would go on: a deadline ends it anyway, temporary files removed. Those
    # swallowed exceptions are not printed.
    sys.unraisablehook = lambda unraisable: None
    if len(_received) == 1:
        timer = threading.Timer(GRACE_SECONDS, _hard_exit, (signum,))
        timer.daemon = True
        timer.start()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install(worker: bool = False) -> None:
    """SIGINT, SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` in the main
    thread, so that ``finally`` blocks remove temporary files, with a deadline for
    the case where the exception is swallowed (SIGINT's own default handler has
    none: a Ctrl-C during an import's callback was lost and the command finished).
    In a batch ``worker``, an idle worker exits at once (see :func:`job`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _worker["on"] = worker
    names = ("SIGTERM", "SIGHUP", "SIGINT")
    for name in names:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _interrupt)


@contextlib.contextmanager
def job():
    """Around one file's work in a batch worker: a signal unwinds the work (its
    temporary file is removed) and then ends the worker process, which the
    executor's own loop would otherwise survive."""
    _worker["busy"] = True
    try:
        yield
    except KeyboardInterrupt:
        if _worker["on"]:
            os._exit(128 + (received() or signal.SIGINT))
        raise
    finally:
        _worker["busy"] = False


def received() -> int | None:
    """The signal (SIGTERM, SIGHUP; SIGINT in a batch worker) that interrupted this
    process, if any; a command's Ctrl-C is not one (it ends with status 1)."""
    for sig in _received:
        if sig != signal.SIGINT or _worker["on"]:
            return sig
    return None


def die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies, so a
    batch worker never outlives the ``pafu`` command that started it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request: end now
        os.kill(os.getpid(), signal.SIGTERM)


def configure_logging(verbose: int = 0, quiet: int = 0) -> None:
    """Messages on stderr: pafu's own at WARNING (``-v`` INFO, ``-q`` ERROR), the
    libraries' and Python warnings only with ``-v``."""
    level = max(logging.DEBUG, logging.WARNING - 10 * verbose + 10 * quiet)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: verbose > 0 or record.name.split(".")[0] == "pafu")
    logging.captureWarnings(True)
    warnings.simplefilter("default" if verbose else "ignore")

"""Process tuning of the console script, in one place, each step with its measurement:
allocator advice, no transparent huge pages, passive OpenMP waits, a quick exit."""

from __future__ import annotations

import logging
import os
import sys


def no_huge_pages() -> None:
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


def keep_freed_memory() -> None:
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


def tune() -> None:
    """Every process setting of the console script, applied before a command runs:
    SIGTERM/SIGHUP handled as Ctrl-C (:mod:`pafu_cli._runtime`), then the memory
    and thread settings below."""
    from pafu_cli import _runtime

    _runtime.install()
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        no_huge_pages()
    keep_freed_memory()
    # Numba's OpenMP workers sleep between parallel loops instead of spinning: the
    # command's serial steps (loading code while another thread decodes, writing)
    # then keep both cores (24 MP DNG -> TIFF, median of 9: 1.44 -> 1.33 s).
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def exit_code(code: int) -> int:
    """The exit status: a run ended by SIGTERM/SIGHUP exits with 128 + the signal
    number, as the shell reports a process killed by it."""
    from pafu_cli import _runtime

    sig = _runtime.received()
    return 128 + int(sig) if sig else code


def quick_exit(code: int) -> None:
    """Flush the standard streams and the logging handlers, then end the process
    with :func:`os._exit`, skipping the interpreter's teardown.

    A process that has loaded the Numba kernels spends 0.13-0.32 s (measured,
    24 MP demosaick) in the teardown, freeing compiled code it is about to drop
    anyway. The command's outputs are complete and closed by then.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(exit_code(code))

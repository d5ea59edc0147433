"""Where Numba keeps pafu's compiled kernels, and whether they are there yet.

Numba caches compiled code next to the sources (``__pycache__``), else in the
user's cache folder (``~/.cache/numba``). When neither is writable (an installed
package run by another user with no writable HOME), every kernel would fail to
compile with a cache error: :func:`setup` then points ``NUMBA_CACHE_DIR`` to a
folder in the system's temporary directory instead. It runs on ``import
pafu_cli``, before Numba is imported, and imports nothing heavy.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_notes: list = []


def _writable(folder: str) -> bool:
    """Whether files can be created in ``folder`` (or in its nearest existing parent)."""
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    return os.access(folder, os.W_OK | os.X_OK)


def _user_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "numba")


def setup() -> None:
    """Choose a writable cache when the package folder and the user's cache are not."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    if _writable(os.path.join(_PACKAGE, "__pycache__")) or _writable(_user_cache()):
        return
    folder = os.path.join(tempfile.gettempdir(), f"pafu-numba-cache-{os.getuid()}")
    os.environ["NUMBA_CACHE_DIR"] = folder
    if "numba" in sys.modules:  # imported before pafu: its configuration is already read
        sys.modules["numba"].config.CACHE_DIR = folder
    _notes.append(
        f"neither {_PACKAGE} nor {_user_cache()} is writable: compiled kernels are cached in {folder}"
    )


def notes() -> list:
    """What :func:`setup` decided, for ``-v``."""
    return list(_notes)


def kernels_cached() -> bool:
    """Whether the banded engine's compiled code is in any of Numba's cache folders
    (if not, the first command compiles the kernels: tens of seconds)."""
    places = [os.path.join(_PACKAGE, "filters", "pafu", "__pycache__")]
    for root in (os.environ.get("NUMBA_CACHE_DIR"), _user_cache()):
        if root:
            places.append(os.path.join(root, "**"))
    pattern = "_band._run_bands_simd-*.nbi"
    return any(glob.glob(os.path.join(p, pattern), recursive=True) for p in places)


_announced: list = []


def announce_compilation() -> None:
    """Once per process, just before the kernels are first needed: say so on stderr
    (a warning of the ``pafu`` logger, hidden by ``-q``) when they will be
    compiled rather than loaded, which takes tens of seconds. Said only when the
    work starts, so that a bad input is refused in one line either way."""
    if _announced:
        return
    _announced.append(True)
    import logging

    log = logging.getLogger("pafu")
    for note in _notes:
        log.info("%s", note)
    if not kernels_cached():
        log.warning("compiling pafu's kernels once (about 20-60 s); later runs start at once")

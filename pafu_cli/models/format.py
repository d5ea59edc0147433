"""The ``.npz`` model file: open it, read its envelope (``format_version``,
``family``), and dispatch to the family's schema.

A filter family registers one :class:`Family` in :data:`FAMILIES`; loading,
saving and resolving models then need no per-family code. The format table
(envelope and the ``pafu`` keys) is the docstring of
:mod:`pafu_cli.filters.pafu.model`.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from pafu_cli.filters.pac import model as pac_model
from pafu_cli.filters.pafu import model as pafu_model
from pafu_cli.filters.pafu.model import fail, one_of, read_int, read_str
from pafu_cli.limits import max_model_bytes

FORMAT_VERSION = 2  # the version written


READABLE_VERSIONS = (1, 2)


V1_FAMILY = "pafu"  # version-1 files carry no ``family`` key


@dataclasses.dataclass(frozen=True)
class Family:
    """A filter family's part of the format.

    ``parse(npz, path)`` validates the family's keys of an open archive and
    returns the model (every problem a one-line ModelError naming ``path``);
    ``to_arrays(model)`` gives those keys back (the envelope is added here);
    ``tasks`` maps each task name to the family's description of it (with
    ``scaled``: whether a caller's scale must equal the model's);
    ``model_type`` is the class of its models (``model_type.family`` is the
    family's name).
    """

    parse: Callable
    to_arrays: Callable
    tasks: Mapping
    model_type: type


FAMILIES = {
    "pafu": Family(pafu_model.parse, pafu_model.to_arrays, pafu_model.TASKS, pafu_model.PafuModel),
    "pafunet": Family(
        pafu_model.parse_net, pafu_model.to_arrays_net, pafu_model.TASKS, pafu_model.PafuNetModel
    ),
    "pac": Family(pac_model.parse, pac_model.to_arrays, pac_model.TASKS, pac_model.PacModel),
}


def family_of(f, path) -> Family:
    """The registered family of an open archive, by its envelope."""
    if "format_version" not in f.files:
        fail(path, "missing key(s) format_version; is this a pafu model?")
    version = read_int(f, "format_version", path)
    if version not in READABLE_VERSIONS:
        fail(path, f"unknown format_version {version}; this pafu reads versions {one_of(READABLE_VERSIONS)}")
    if version == 1:
        name = V1_FAMILY
    elif "family" not in f.files:
        fail(path, f"missing key family (format_version {version})")
    else:
        name = read_str(f, "family", path)
    if name not in FAMILIES:
        fail(path, f"unknown model family '{name}'; this pafu knows {one_of(sorted(FAMILIES))}")
    return FAMILIES[name]


def _array_header(z, member):
    """(shape, dtype) from the ``.npy`` header of an archive member (its data unread)."""
    with z.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return shape, dtype


def _preflight(path: str) -> None:
    """Refuse, from the archive's directory and each array's header (nothing is
    inflated or allocated), a file that is no zip archive, a damaged one, arrays
    of Python objects, and arrays that declare more than
    :func:`pafu_cli.limits.max_model_bytes` or more data than the file holds."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            zip_start = fh.read(4) == b"PK\x03\x04"
        if zip_start:  # a zip archive without its directory: cut short
            fail(path, "damaged or truncated .npz file (its zip directory is missing)")
        fail(path, "not a .npz model file (no zip archive); give a model made by `pafu train`")
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.infolist() if m.filename.endswith(".npy")]
            if not members:
                fail(path, "holds no arrays; not a pafu model")
            declared, cap = 0, max_model_bytes()
            for m in members:
                name = repr(m.filename[:-4])
                shape, dtype = _array_header(z, m)
                if dtype.hasobject:
                    fail(path, f"array {name} holds Python objects (pickled data), which pafu never loads")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > m.file_size:
                    fail(path, f"array {name} declares more data than the file holds (damaged file)")
                declared += nbytes
                if declared > cap:
                    fail(
                        path,
                        f"declares {declared / 2**20:.0f} MiB of arrays, more than the {cap / 2**20:.0f} "
                        "MiB limit (a damaged file or a decompression bomb); set PAFU_MAX_MODEL_BYTES "
                        "to raise it",
                    )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
        fail(path, f"damaged or truncated .npz file ({type(e).__name__}: {e})")


def load_model(path):
    """Load and validate a model file of any registered family (``allow_pickle=False``).

    Raises
    ------
    ModelError
        With a one-line message naming the file and the problem.
    """
    path = str(path)
    if not os.path.isfile(path):
        fail(path, "model file not found")
    _preflight(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return family_of(f, path).parse(f, path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
        fail(path, f"damaged or truncated .npz file ({type(e).__name__}: {e})")


def save_model(model, path) -> None:
    """Write ``model`` in format version :data:`FORMAT_VERSION`, its family's keys
    after the envelope (atomically: temp file, then rename)."""
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "family": np.array(model.family),
        **FAMILIES[model.family].to_arrays(model),
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def is_model(obj) -> bool:
    """Whether ``obj`` is a model object of a registered family."""
    return isinstance(obj, tuple(f.model_type for f in FAMILIES.values()))

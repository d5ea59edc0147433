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
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from pafu_cli.filters.pafu import model as pafu_model
from pafu_cli.filters.pafu.model import fail, one_of, read_int, read_str

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
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as e:  # zip errors, pickled arrays, not an npz at all
        fail(path, f"not a readable .npz model file ({type(e).__name__}: {e})")
    if not isinstance(f, np.lib.npyio.NpzFile):
        fail(path, "not an .npz archive (a single .npy array?)")
    try:
        with f:
            return family_of(f, path).parse(f, path)
    except ValueError as e:  # object arrays refused by allow_pickle=False
        fail(path, f"unreadable array ({e}); pickled content is not accepted")


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

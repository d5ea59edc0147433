"""Shipped models: where they live, their names, and resolving a name, path or model
for a task (analytic banks included)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pafu_cli.errors import ModelError
from pafu_cli.filters.pafu import analytic
from pafu_cli.models.format import FAMILIES, is_model, load_model

DEFAULT_MODELS = {
    ("upscale", 2): "upscale_x2",
    ("upscale", 3): "upscale_x3",
    ("upscale", 4): "upscale_x4",
    ("demosaick", 1): "demosaick",
}


# Quality levels of the upscale models: the shipped model of a level is the
# default's name with this suffix (``upscale_x2_high``). ``fast``: one kernel
# per pixel; ``standard``: two kernels blended (the default); ``high``: a
# ``pafunet`` model, the kernels also reading the selector's hidden features.
QUALITY_SUFFIX = {"fast": "_fast", "standard": "", "high": "_high"}


def quality_model(task: str, scale: int, quality: str) -> str:
    """The shipped model's name for ``task`` at ``scale`` and ``quality`` (a key of
    :data:`QUALITY_SUFFIX`); a one-line ModelError if it is not installed."""
    if quality not in QUALITY_SUFFIX:
        raise ValueError(f"quality must be one of {', '.join(QUALITY_SUFFIX)}, got {quality!r}")
    name = DEFAULT_MODELS[(task, scale)] + QUALITY_SUFFIX[quality]
    if not (models_dir() / f"{name}.npz").exists():
        raise ModelError(
            f"{name}: no {quality}-quality {task} model x{scale} is installed; shipped: "
            f"{', '.join(list_models()) or 'none'}"
        )
    return name


# Hand-made banks selectable by name (see pafu_cli.filters.pafu.analytic): task ->
# name -> the bank for a scale.
ANALYTIC_MODELS = {
    "demosaick": {"bilinear": lambda scale: analytic.bilinear_demosaick_model()},
    "upscale": {
        "nearest": analytic.nearest_upscale_model,
        "bilinear": analytic.bilinear_upscale_model,
    },
}


def models_dir() -> Path:
    """Folder of the shipped models (installed package data, or the repo's ``models/``)."""
    try:
        from importlib.resources import files

        p = Path(str(files("pafu_cli.shipped_models")))
        if p.is_dir():
            return p
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "models"


def list_models() -> list:
    """Names of the shipped models."""
    return sorted(p.stem for p in models_dir().glob("*.npz"))


def resolve_model(model, task: str, scale: int = 1):
    """Turn ``None`` (the default), a shipped name, a path or a model into a checked model.

    The model must be made for ``task`` and, where the task has a choice of scale
    (its family's task table), for ``scale``.
    """
    if is_model(model):
        m = model
    else:
        if model is None:
            model = DEFAULT_MODELS[(task, scale)]
        if str(model) in ANALYTIC_MODELS.get(task, ()):
            return ANALYTIC_MODELS[task][str(model)](scale)
        p = Path(str(model))
        if not p.suffix and not p.exists():
            candidate = models_dir() / f"{model}.npz"
            if not candidate.exists():
                known = ", ".join(list_models()) or "none installed"
                raise ModelError(f"{model}: no such shipped model (shipped: {known}); give a .npz path")
            p = candidate
        m = _load(p)
    where = m.path or m.name
    if m.task != task:
        raise ModelError(f"{where}: this is a {m.task} model, {task} needs a {task} model")
    if FAMILIES[m.family].tasks[m.task].scaled and m.scale != scale:
        raise ModelError(f"{where}: this model {m.task}s x{m.scale}, x{scale} was asked for")
    return m


@functools.lru_cache(maxsize=32)
def _load_file(path: str, key) -> object:
    return load_model(path)


def _load(path: Path):
    """:func:`load_model`, once per process and file version: a batch worker (a
    ``-j`` process, a Dask worker) reads each model file once, not once per input
    file. The key is the absolute path, modification time and size, so a file
    replaced on disk is read again; errors are not remembered."""
    try:
        st = os.stat(path)
    except OSError:
        return load_model(path)  # its one-line error
    return _load_file(str(path), (os.path.abspath(path), st.st_mtime_ns, st.st_size))


def model_loads() -> int:
    """Model files read by this process so far (through :func:`resolve_model`)."""
    return _load_file.cache_info().misses

"""Shared fixtures and helpers: seeded rng, tolerances, a small random model,
and paths to the sample DNG and to ../shared (never copied into the repo).

Tests that need ../shared skip when it is missing, unless the environment sets
``PAFU_REQUIRE_SHARED=1`` (CI does): then they fail, so that a CI run without the
data cannot pass silently."""

import os
from pathlib import Path

import numpy as np
import pytest

from pafu_cli.filters.pafu.model import LAYOUTS, PafuModel, expected_out_channels

ATOL = 1e-5
RTOL = 1e-5
SEED = 20261121

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DNG = REPO / "samples" / "canon_eos550d_colorchart.dng"
SHARED = Path(os.environ.get("PAFU_SHARED", REPO.parent / "shared"))


def random_model(rng, task="upscale", scale=2, kernel_sizes=(5, 3, 5, 1, 3), width=8):
    """A random, valid PafuModel: mixed kernel sizes, a 3-layer selector (3x3, 3x3, 1x1)."""
    scale = 1 if task == "demosaick" else scale
    ci = 4 if task == "demosaick" else 3
    co = expected_out_channels(task, scale)
    sizes = np.array(kernel_sizes, np.int32)
    n, big = len(sizes), int(sizes.max())
    bank = np.zeros((n, co, ci, big, big), np.float32)
    for z, k in enumerate(sizes):
        m = (big - k) // 2
        bank[z, :, :, m : m + k, m : m + k] = rng.normal(0, 0.2, (co, ci, k, k))
    chans = [ci, width, width, n]
    ks = [3, 3, 1]
    weights = tuple(
        rng.normal(0, 1.0, (chans[i + 1], chans[i], ks[i], ks[i])).astype(np.float32) for i in range(3)
    )
    biases = tuple(rng.normal(0, 1.0, chans[i + 1]).astype(np.float32) for i in range(3))
    return PafuModel(
        task=task,
        scale=scale,
        input_layout=LAYOUTS[task],
        selector_weights=weights,
        selector_biases=biases,
        selector_input_mean=np.full(ci, 0.5, np.float32),
        selector_input_scale=np.full(ci, 4.0, np.float32),
        bank=bank,
        kernel_sizes=sizes,
        name="random",
        description="test model",
    )


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def shared_required() -> bool:
    """True when ``PAFU_REQUIRE_SHARED`` is set (and not 0): missing shared data fails."""
    return os.environ.get("PAFU_REQUIRE_SHARED", "").strip() not in ("", "0")


def shared_missing(msg: str):
    """Skip the calling test for missing shared data, or fail it when
    ``PAFU_REQUIRE_SHARED=1``."""
    if shared_required():
        pytest.fail(f"{msg}; PAFU_REQUIRE_SHARED=1 forbids skipping", pytrace=False)
    pytest.skip(msg)


def shared_path(*parts, kind="dir"):
    """``SHARED / parts``, checked to be a folder (``kind="dir"``) or a file
    (``kind="file"``); missing, see :func:`shared_missing`."""
    path = SHARED.joinpath(*parts)
    if not (path.is_dir() if kind == "dir" else path.is_file()):
        shared_missing(f"{path} not found (set PAFU_SHARED to the shared folder)")
    return path


@pytest.fixture
def shared_data():
    """The image data sets in ../shared/data (Set5, Set14, Kodak24, ...)."""
    return shared_path("data")


@pytest.fixture
def shared_raw():
    """The RAW test collection in ../shared/raw (never copied into the repo)."""
    return shared_path("raw")


@pytest.fixture
def sample_dng():
    """The repository's sample DNG (MIT, see samples/README.md)."""
    return SAMPLE_DNG

"""Shared fixtures and helpers: seeded rng, tolerances, a small random model,
and paths to the sample DNG and to ../shared (never copied into the repo)."""

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


def _shared(sub):
    path = SHARED / sub
    if not path.is_dir():
        pytest.skip(f"{path} not found (set PAFU_SHARED)")
    return path


@pytest.fixture
def shared_data():
    """The image data sets in ../shared/data (Set5, Set14, Kodak24, ...)."""
    return _shared("data")


@pytest.fixture
def shared_raw():
    """The RAW test collection in ../shared/raw (never copied into the repo)."""
    return _shared("raw")


@pytest.fixture
def sample_dng():
    """The repository's sample DNG (MIT, see samples/README.md)."""
    return SAMPLE_DNG

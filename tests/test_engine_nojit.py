"""The engine runs as plain Python with ``NUMBA_DISABLE_JIT=1`` (to step through
it, or to measure coverage): the portable 16-lane kernels are picked on their
own, ``prange`` and the thread count work, and the results are the compiled
engine's.

Bits: the portable kernels use an exact fused multiply-add in both modes, so
the 16-lane paths (16+ columns, 1 x 1 and 3 x 3 selector layers, the kernel
apply) give the same bits; the column-tile paths (fewer than 16 columns, other
kernel sizes) leave fusing to LLVM when compiled and do not fuse as Python, and
NumPy's float32 ``exp`` (the ``mix`` 2 weight) may differ from the C library's
in the last bit: equal to float32 rounding there.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import REPO

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import numba
import numpy as np
assert numba.config.DISABLE_JIT
from pafu_cli.filters.pafu import _simd
assert not _simd.simd_enabled()
import test_engine_nojit
np.savez(sys.argv[2], **test_engine_nojit.cases())
"""


def cases() -> dict:
    """A tiny demosaick and upscale with shipped models (16+ columns: the 16-lane
    paths), and a random model on fewer columns (the tile paths), mix 1 and 2."""
    import dataclasses

    from conftest import random_model

    from pafu_cli import demosaick, upscale
    from pafu_cli.models.registry import resolve_model

    rng = np.random.default_rng(5)
    res = {}
    cfa = rng.random((6, 24), dtype=np.float32)
    res["demosaick"], res["demosaick_sel"] = demosaick(
        cfa, "GBRG", model=resolve_model(None, "demosaick"), return_selection=True
    )
    img = rng.random((3, 17, 3), dtype=np.float32)
    res["upscale_x2"], res["upscale_x2_sel"] = upscale(
        img, 2, model=resolve_model(None, "upscale", 2), return_selection=True
    )
    m = random_model(rng, scale=3)
    img = rng.random((4, 5, 3), dtype=np.float32)
    for mix in (1, 2):
        res[f"random_mix{mix}"], res[f"random_mix{mix}_sel"] = upscale(
            img, 3, model=dataclasses.replace(m, mix=mix), return_selection=True
        )
    return res


def test_engine_runs_without_jit(tmp_path):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    path = tmp_path / "nojit.npz"
    tests = str(Path(__file__).resolve().parent)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, tests, str(path)], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    py = np.load(path)
    jit = cases()
    assert set(py.files) == set(jit)
    for name, want in jit.items():
        got = py[name]
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if name.endswith("_sel") or name == "demosaick":  # mix 1, 16-lane paths only: the same bits
            assert got.tobytes() == want.tobytes(), name
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)

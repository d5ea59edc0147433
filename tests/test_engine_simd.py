"""The engine's 16-lane kernels: the explicit SIMD (LLVM IR) and the portable
Numba form give the same bits, kernel by kernel and for the whole engine, in
this process and with ``PAFU_SIMD=0`` in a fresh one."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, random_model
from test_band import _with_selector

from pafu_cli import demosaick, upscale
from pafu_cli.filters.pafu import _simd, engine
from pafu_cli.models.registry import resolve_model

needs_ir = pytest.mark.skipif(not _simd.IR_BUILT, reason="the IR kernels do not build with this Numba")


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


@needs_ir
def test_self_check_and_choice():
    for seed in range(4):
        assert _simd.self_check(seed)
    if not _simd.FORCED_OFF:
        assert _simd.simd_enabled()


@needs_ir
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("ci", [1, 2, 5, 16])
def test_conv_kernels_same_bits(rng, k, ci):
    rows, cols = 3, 50
    src = (rng.standard_normal(ci * rows * cols) * 10).astype(np.float32)
    src[::7] = -0.0
    wf = rng.standard_normal(9 * ci * k * k).astype(np.float32)
    bf = rng.standard_normal(9).astype(np.float32)
    for outs in [(0, 1, 2, 3), (4, 8, 8, 8), (5, 5, 5, 5)]:
        for relu in (True, False):
            for j0 in (0, 5, cols - 16 - (k - 1)):
                got = []
                for simd in (True, False):
                    dst = np.full(9 * 16, np.nan, np.float32)
                    _simd.conv_4x16_array(
                        simd,
                        k,
                        src,
                        (j0, rows * cols, cols, ci),
                        wf,
                        tuple(o * ci * k * k for o in outs),
                        bf,
                        outs,
                        relu,
                        dst,
                        tuple(o * 16 for o in outs),
                    )
                    got.append(dst)
                assert _bits(got[0]) == _bits(got[1])


@needs_ir
@pytest.mark.parametrize("top2", [False, True])
@pytest.mark.parametrize("co", [2, 3, 17, 32])
def test_choice_kernels_same_bits_and_match_argsort(rng, top2, co):
    ci, cols = 6, 40
    src = rng.standard_normal(ci * cols).astype(np.float32)
    wf = (rng.standard_normal(co * ci) * 2).astype(np.float32)
    bf = rng.standard_normal(co).astype(np.float32)
    wf[ci : 2 * ci] = wf[:ci]  # logits 0 and 1 equal: the first one wins
    bf[1] = bf[0]
    got = []
    for simd in (True, False):
        choice = (np.full(30, -1, np.int32), np.full(30, -1, np.int32), np.full(30, np.nan, np.float32))
        _simd.conv1_choice_16_array(simd, top2, src, (3, cols), wf, bf, (ci, co, 0, 0), choice, 7)
        got.append(choice)
    for a, b in zip(*got):
        assert _bits(a) == _bits(b)
    idx, idx2, wt = got[0]
    logits = bf[:, None] + wf.reshape(co, ci).astype(np.float64) @ src.reshape(ci, cols)[:, 3:19]
    order = np.argsort(-logits, axis=0, kind="stable")
    np.testing.assert_array_equal(idx[7:23], order[0])
    if top2:
        np.testing.assert_array_equal(idx2[7:23], order[1])
        l1 = np.take_along_axis(logits, order[:1], 0)[0]
        l2 = np.take_along_axis(logits, order[1:2], 0)[0]
        np.testing.assert_allclose(wt[7:23], 1 / (1 + np.exp(l2 - l1)), rtol=1e-5)
    else:
        assert np.all(idx2 == -1) and np.isnan(wt).all()  # untouched
    assert np.all(idx[:7] == -1) and np.all(idx[23:] == -1)


@needs_ir
@pytest.mark.parametrize("n_taps", [1, 2, 27, 100, 196])
def test_dot_kernel_same_bits(rng, n_taps):
    raw = (rng.standard_normal(3000) * 5).astype(np.float32)
    off = rng.integers(0, 1000, n_taps).astype(np.int64)
    wf = rng.standard_normal(n_taps * 48 + 32).astype(np.float32)
    for qs, ss in [
        ((0, 1, 2, 3), (0, 16, 32, 48)),
        ((9, 9, 9, 9), (16, 16, 16, 16)),
        ((5, 7, 7, 1999), (0, 48, 48, 16)),
    ]:
        got = []
        for simd in (True, False):
            res = np.full(64, np.nan, np.float32)
            _simd.dot4x16_array(simd, raw, off, qs, wf, 16, 48, res, ss)
            got.append(res)
        assert _bits(got[0]) == _bits(got[1])


def _models(rng):
    """Random models over the engine's paths, and shipped ones."""
    up3 = random_model(rng, scale=3)
    deep = _with_selector(random_model(rng, scale=2), (3, 1, 3), rng)  # 3 x 3 last layer
    return {
        "up2": random_model(rng, scale=2),
        "up3_mix2": dataclasses.replace(up3, mix=2),
        "up2_last3x3_mix2": dataclasses.replace(deep, mix=2),
        "up4": random_model(rng, scale=4, kernel_sizes=(7, 1, 3)),
        "dm": random_model(rng, task="demosaick"),
        "dm_mix2": dataclasses.replace(random_model(rng, task="demosaick"), mix=2),
    }


def engine_outputs() -> dict:
    """Outputs of the engine on fixed random inputs (the same in any process)."""
    rng = np.random.default_rng(20261122)
    res = {}
    for name, m in _models(rng).items():
        if m.task == "demosaick":
            cfa = rng.random((40, 71), dtype=np.float32)
            out, idx = engine.run_mosaic(m, cfa, "GRBG", 6, band=7)
        else:
            x = rng.random((23, 53, 3), dtype=np.float32)
            out, idx = engine.run(m, x, band=5)
        res[name], res[name + "_idx"] = out, idx
    cfa = rng.random((64, 90), dtype=np.float32)
    res["shipped_demosaick"], res["shipped_demosaick_sel"] = demosaick(
        cfa, "BGGR", model=resolve_model(None, "demosaick"), return_selection=True
    )
    img = rng.random((30, 41, 3), dtype=np.float32)
    res["shipped_upscale_x2"], res["shipped_upscale_x2_sel"] = upscale(
        img, 2, model=resolve_model(None, "upscale", 2), return_selection=True
    )
    return res


@pytest.mark.slow  # compiles the portable engine too (about 15 s cold): run by .ci/run's slow step
@needs_ir
def test_engine_same_bits_with_portable_kernels_in_process(monkeypatch):
    assert not _simd.FORCED_OFF, "run without PAFU_SIMD=0"
    assert _simd.simd_enabled()
    simd = engine_outputs()
    monkeypatch.setattr(_simd, "_ENABLED", False)
    portable = engine_outputs()
    for name in simd:
        assert _bits(simd[name]) == _bits(portable[name]), name


CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from pafu_cli.filters.pafu import _simd
assert _simd.FORCED_OFF and not _simd.simd_enabled()
import test_engine_simd
np.savez(sys.argv[2], **test_engine_simd.engine_outputs())
"""


@pytest.mark.slow  # a fresh process compiles the portable engine (20-35 s cold): .ci/run's slow step
@needs_ir
def test_engine_same_bits_with_pafu_simd_0(tmp_path):
    """``PAFU_SIMD=0`` in a fresh process: the portable kernels, the same bits."""
    assert not _simd.FORCED_OFF, "run without PAFU_SIMD=0"
    env = dict(os.environ, PAFU_SIMD="0")
    path = tmp_path / "portable.npz"
    tests = str(Path(__file__).resolve().parent)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, tests, str(path)], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    portable = np.load(path)
    simd = engine_outputs()
    assert set(portable.files) == set(simd)
    for name in simd:
        assert _bits(simd[name]) == _bits(portable[name]), name


BROKEN = """
import sys, warnings
import numba.core.cgutils as cgutils
real = cgutils.get_or_insert_function

def failing(module, fnty, name):  # as if this LLVM had no 16-lane fma
    if name.startswith("llvm.fma.v"):
        raise NotImplementedError(name)
    return real(module, fnty, name)

cgutils.get_or_insert_function = failing
import numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import random_model
from pafu_cli.filters.pafu import _simd, engine
m = random_model(np.random.default_rng(3), scale=2)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out, idx = engine.run(m, np.random.default_rng(4).random((9, 37, 3), dtype=np.float32))
assert any("do not compile" in str(w.message) for w in caught), [str(w.message) for w in caught]
assert not _simd.simd_enabled()
np.savez(sys.argv[2], out=out, idx=idx)
"""


@pytest.mark.slow  # compiles the whole engine in a fresh cache (about 20 s): run by .ci/run's slow step
@needs_ir
def test_engine_falls_back_when_the_ir_does_not_compile(tmp_path):
    """An IR that fails to compile: a warning, then the portable kernels (the same
    bits). Own Numba cache: the engine compiled there must not be reused."""
    assert not _simd.FORCED_OFF, "run without PAFU_SIMD=0"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    path = tmp_path / "broken.npz"
    tests = str(Path(__file__).resolve().parent)
    r = subprocess.run(
        [sys.executable, "-c", BROKEN, tests, str(path)], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(path)
    m = random_model(np.random.default_rng(3), scale=2)
    out, idx = engine.run(m, np.random.default_rng(4).random((9, 37, 3), dtype=np.float32))
    assert _bits(got["out"]) == _bits(out)
    np.testing.assert_array_equal(got["idx"], idx)

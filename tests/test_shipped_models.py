"""Golden outputs of every shipped model on small synthetic inputs.

``tests/data/goldens.npz`` holds each output quantised to 16 bits between the
case's ``lo`` and ``hi`` (``goldens.json``), with the kernel selection (``pafu``
family; ``pac`` models select no kernel); the json also has the sha256 of the
float32 output. A model whose bank, kernel order or selector changed (pafu), whose
branches, head or spatial tables changed (pac), or an engine whose numbers
changed, fails here with the size of the change. Made by ``tools/make_goldens.py``
(see ``tests/data/README.md``).

Tolerance: one quantisation level, (hi - lo) / 65535, 2.5e-5 to 4e-5 for these
ranges. The outputs are bit-identical for any thread count on one build; on
another CPU or compiler, fused multiply-adds may move the last bits (1e-7), and
the generator checks that no case sits on a knife edge (a kernel choice that an
input change of 1e-6 flips). ``PAFU_GOLDEN_EXACT=1`` also demands the very same
float32 bits (to check an engine refactoring that must not change any bit).
"""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

import pafu_cli
from pafu_cli.cfa import PATTERNS
from pafu_cli.models import list_models, models_dir

DATA = Path(__file__).resolve().parent / "data"
MANIFEST = json.loads((DATA / "goldens.json").read_text())
CASES = MANIFEST["cases"]
LEVELS = MANIFEST["levels"]
EXACT = os.environ.get("PAFU_GOLDEN_EXACT", "").strip() not in ("", "0")


def _load_generator():
    """tools/make_goldens.py, whose input conversion, API call and hashes the
    goldens were made with: the tests use the same functions."""
    path = DATA.parents[1] / "tools" / "make_goldens.py"
    spec = importlib.util.spec_from_file_location("make_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


def _npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def inputs():
    return _npz(DATA / "golden_inputs.npz")


@pytest.fixture(scope="module")
def goldens():
    return _npz(DATA / "goldens.npz")


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_golden_output(case, inputs, goldens):
    out, sel = GEN.run_case(case, GEN.input_array(inputs, case))
    key = case["key"]
    assert list(out.shape) == case["shape"], f"{key}: output shape {out.shape}, golden {case['shape']}"
    same_bits = GEN.sha256(out, "<f4") == case["sha256_float32"]

    lo, hi = case["lo"], case["hi"]
    step = (hi - lo) / LEVELS
    gold = lo + goldens[key].astype(np.float64) * step
    diff = out.astype(np.float64) - gold
    levels = np.abs(diff) / step
    bad = levels > 1.0
    if bad.any():
        worst = np.unravel_index(np.argmax(levels), levels.shape)
        pytest.fail(
            f"{key}: {int(bad.sum())} of {bad.size} values differ from the golden by more than one "
            f"level ({step:.2g}); max |diff| {np.abs(diff).max():.3g} at {tuple(int(i) for i in worst)}, "
            f"mean |diff| {np.abs(diff).mean():.3g}; float32 bits "
            f"{'identical' if same_bits else 'differ'}"
            + (
                ""
                if sel is None
                else f"; kernel choice differs at {int((sel != goldens[key + '.sel']).sum())} "
                f"of {sel.size} places"
            ),
            pytrace=False,
        )
    assert (sel is None) == ("sha256_selection" not in case), f"{key}: a selection only where one is recorded"
    if sel is not None:
        changed = sel != goldens[key + ".sel"]
        assert not changed.any(), (
            f"{key}: outputs within one level but the kernel choice differs at {int(changed.sum())} "
            f"of {sel.size} places (two kernels swapped?)"
        )
        assert GEN.sha256(sel, "<i4") == case["sha256_selection"]
    if EXACT:
        assert same_bits, f"{key}: float32 output bits differ (max |diff| {np.abs(diff).max():.3g})"


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_model_is_the_one_the_goldens_were_made_with(name):
    """Every array a shipped model computes with is unchanged, kernel by kernel (pafu)
    or layer by layer and table by table (pac), even kernels that the golden inputs
    do not select. An intended change (a retrained model) regenerates the goldens:
    ``python tools/make_goldens.py``."""
    want = MANIFEST["models"][name]
    got = GEN.fingerprint(pafu_cli.load_model(models_dir() / f"{name}.npz"))
    if got.get("family") != want.get("family"):
        pytest.fail(f"{name}: a {got.get('family')} model, the goldens have a {want.get('family')} one")
    parts = GEN.FINGERPRINT_PARTS
    plain = [k for k in sorted(set(want) | set(got)) if k not in parts]
    problems = [f"{k} {got.get(k)} (golden {want.get(k)})" for k in plain if got.get(k) != want.get(k)]
    for part, what in parts.items():
        if part not in want and part not in got:
            continue
        if isinstance(want.get(part), dict):  # per scale
            keys = sorted(set(want[part]) | set(got.get(part, {})))
            changed = [k for k in keys if got.get(part, {}).get(k) != want[part].get(k)]
            if changed:
                problems.append(f"{what}s changed: {', '.join(changed)}")
            continue
        if len(got.get(part, ())) != len(want.get(part, ())):
            problems.append(f"{len(got.get(part, ()))} {what}s, {len(want.get(part, ()))} in the golden")
            continue
        changed = [i for i, (a, b) in enumerate(zip(got[part], want[part])) if a != b]
        moved = {i: want[part].index(got[part][i]) for i in changed if got[part][i] in want[part]}
        if changed:
            problems.append(
                f"{what}s changed: {changed}"
                + (f" (moved: {', '.join(f'{i} was {j}' for i, j in moved.items())})" if moved else "")
            )
    assert not problems, f"{name}: " + "; ".join(problems)


def test_every_shipped_model_has_goldens():
    """A model added to models/ without goldens (or goldens of a removed one) fails."""
    assert sorted({c["model"] for c in CASES}) == list_models()
    assert sorted(MANIFEST["models"]) == list_models()


def test_the_cases_cover_patterns_noise_and_scales():
    by_model = {}
    for c in CASES:
        by_model.setdefault(c["model"], []).append(c)
    assert sorted(c["pattern"] for c in by_model["demosaick"]) == sorted(PATTERNS)
    for name, cases in by_model.items():
        m = pafu_cli.load_model(models_dir() / f"{name}.npz")
        if m.task == "guided_upsample":  # each of its scales that has a guide input
            want = [s for s in GEN.GUIDED_SCALES if s in m.scales]
            assert want and [c["scale"] for c in cases] == want, name
            assert all(c["input"] == "guided" for c in cases), name
            continue
        if m.task == "upscale":
            assert [c["scale"] for c in cases] == [m.scale], name
            continue
        assert any(c["input"] == "picture" and c["pattern"] == "RGGB" for c in cases), name
        sigma = round(m.noise_sigma * 255)
        if sigma:
            assert any(c["input"] == f"noisy_sigma{sigma}" for c in cases), f"{name}: no noisy case"


def test_the_golden_inputs_exercise_most_kernels(goldens):
    """Each case uses at least half of its model's kernels, so that a change of
    one kernel, or of which kernel the selector picks, shows in some output. A
    pafunet model leans on its feature taps and uses fewer kernels anywhere
    (upscale_x2_high: 11 of 32 on ten T91 pictures): a quarter of them."""
    for c in CASES:
        if "sha256_selection" not in c:  # no kernel selection (pac family)
            continue
        m = pafu_cli.load_model(models_dir() / f"{c['model']}.npz")
        n = m.n_kernels
        used = len(np.unique(goldens[c["key"] + ".sel"]))
        least = n // 4 if m.family == "pafunet" else n // 2
        assert used >= least, f"{c['key']}: {used} of {n} kernels used"


def test_the_generator_reproduces_the_inputs(inputs):
    """tools/make_goldens.py --inputs draws the committed inputs again (the
    command in tests/data/README.md is true). Failing after a NumPy upgrade
    means its random streams changed: regenerate inputs and goldens."""
    again = GEN.make_inputs(int(inputs["seed"]))
    assert sorted(again) == sorted(inputs)
    for k, a in inputs.items():
        np.testing.assert_array_equal(again[k], a, err_msg=k)


def test_golden_inputs_are_varied(inputs):
    """Saturated colours, clipped white, dark areas and detail are all present."""
    for key in ("picture", "small"):
        im = inputs[key].astype(np.int64)
        assert inputs[key].dtype == np.uint8 and im.shape[2] == 3
        spread = im.max(axis=2) - im.min(axis=2)
        assert (spread >= 200).mean() > 0.05, f"{key}: too few saturated pixels"
        assert (im.min(axis=2) == 255).any(), f"{key}: no clipped white"
        assert (im.max(axis=2) <= 40).any(), f"{key}: nothing dark"
        assert np.abs(np.diff(im, axis=1)).max() >= 200, f"{key}: no hard edge"


def test_guided_inputs_hold_a_step_a_ramp_and_a_hole(inputs):
    """The guided map has a depth step, smooth ramps and one hole; each guide is the
    map's size times its scale, with colour edges."""
    d = inputs["guided_map"]
    assert d.dtype == np.float32 and d.shape == GEN.GUIDED_SIZE
    assert np.isnan(d).sum() == 1
    steps = np.abs(np.diff(d, axis=1))
    assert np.nanmax(steps) > 1.0, "no depth step"
    assert (np.isclose(steps, 0.08, atol=1e-4)).sum() > 40, "no ramp"
    for s in GEN.GUIDED_SCALES:
        g = inputs[f"guided_guide_x{s}"]
        assert g.dtype == np.uint8 and g.shape == (d.shape[0] * s, d.shape[1] * s, 3), s
        assert np.abs(np.diff(g.astype(np.int64), axis=1)).max() >= 100, f"x{s}: no colour edge"

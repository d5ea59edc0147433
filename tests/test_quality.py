"""Every shipped model's test quality, measured again with the standard protocols
(``pafu_cli.evaluation.protocols``) on ../shared/data, must stay within 0.02 dB of
the figure recorded in the model file (``pafu evaluate --record``:
``load_model(p).quality["test"]``, rounded to 0.01 dB).

Keys: demosaick ``"<set> b10"`` and ``"<set> b10 sigma<s>"`` (CPSNR with the
10-pixel border, RGGB mosaic with noise of sigma s in 0..255 units), upscale
``"<set>"`` and ``"<set> ens"`` (Y-PSNR, the x8 self-ensemble with ``ens``).
Every recorded figure is checked. The default run measures one figure per model,
the cheap ones (about 10 s): demosaick models on McMaster at the recorded noise
level nearest to their own, upscale models on Set5 without the ensemble; the
other figures (Kodak24, other noise levels, Set14, the x8 ensemble: about 100 s
on 2 cores) are marked slow.
"""

import re

import numpy as np
import pytest
from conftest import shared_missing, shared_path

import pafu_cli
from pafu_cli.evaluation import protocols
from pafu_cli.models import list_models, models_dir

TOLERANCE_DB = 0.02

DEMOSAICK_KEY = re.compile(r"^(?P<set>[A-Za-z0-9_]+) b10(?: sigma(?P<sigma>\d+(?:\.\d+)?))?$")
UPSCALE_KEY = re.compile(r"^(?P<set>[A-Za-z0-9_]+)(?P<ens> ens)?$")
REQUIRED_SETS = {"demosaick": ("Kodak24", "McMaster"), "upscale": ("Set5", "Set14")}


DEFAULT_SETS = {"demosaick": "McMaster", "upscale": "Set5"}


def _shipped():
    """name -> (task, scale, noise sigma in 0..255, recorded test figures) of every shipped model."""
    out = {}
    for name in list_models():
        m = pafu_cli.load_model(models_dir() / f"{name}.npz")
        out[name] = (m.task, m.scale, m.noise_sigma * 255, dict(m.quality.get("test", {})))
    return out


SHIPPED = _shipped()


def _parse(task, key):
    """(set, sigma or ensemble) of a recorded key, or None if not understood."""
    if task == "demosaick":
        g = DEMOSAICK_KEY.match(key)
        return g and (g["set"], float(g["sigma"] or 0))
    g = UPSCALE_KEY.match(key)
    return g and (g["set"], bool(g["ens"]))


def _default_key(task, sigma, test):
    """The one figure of a model that the default (not slow) run measures."""
    keys = [k for k in test if _parse(task, k) and _parse(task, k)[0] == DEFAULT_SETS[task]]
    if task == "upscale":
        keys = [k for k in keys if not _parse(task, k)[1]]
    return min(keys, key=lambda k: abs(_parse(task, k)[1] - sigma), default=None)


def _params():
    params = []
    for name, (task, _, sigma, test) in SHIPPED.items():
        default = _default_key(task, sigma, test)
        for key in sorted(test):
            marks = [] if key == default else [pytest.mark.slow]
            params.append(pytest.param(name, key, marks=marks, id=f"{name}-{key.replace(' ', '_')}"))
    return params


def test_every_shipped_model_records_its_test_quality():
    """Each model records at least the noise-free figures on the standard test sets,
    and only keys that this file knows how to measure again."""
    for name, (task, _, sigma, test) in SHIPPED.items():
        assert _default_key(task, sigma, test), f"{name}: nothing recorded on {DEFAULT_SETS[task]}"
        unknown = [k for k in test if not _parse(task, k)]
        assert not unknown, f"{name}: recorded test keys not understood: {unknown}"
        want = {f"{s} b10" if task == "demosaick" else s for s in REQUIRED_SETS[task]}
        assert want <= set(test), f"{name}: no recorded test quality for {sorted(want - set(test))}"


@pytest.mark.parametrize(("name", "key"), _params())
def test_recorded_quality_is_reproduced(name, key):
    task, scale, _, test = SHIPPED[name]
    recorded = test[key]
    test_set, arg = _parse(task, key)
    folder = shared_path("data", test_set)
    if not any(folder.glob("*.png")):
        shared_missing(f"{folder} holds no PNG image")
    if task == "demosaick":
        scores = protocols.demosaick_scores(folder, name, sigma=arg)
        measured = float(np.mean([b10 for b10, _ in scores.values()]))
    else:
        scores = protocols.sr_scores(folder, scale, name, ensemble=arg)
        measured = float(np.mean(list(scores.values())))
    assert abs(measured - recorded) <= TOLERANCE_DB + 1e-9, (
        f"{name} {key}: {measured:.4f} dB measured, {recorded:.2f} dB recorded "
        f"({measured - recorded:+.4f} dB; tolerance {TOLERANCE_DB} dB)"
    )

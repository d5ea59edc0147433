"""The .npz model format: round trip, every rejection path with its message, the
envelope (format versions 1 and 2, the family dispatch) and the registry."""

import dataclasses

import numpy as np
import pytest
from conftest import random_model

from pafu_cli.errors import ModelError
from pafu_cli.filters.pafu.model import TASKS, PafuModel, load_model, save_model
from pafu_cli.models import format as fmt
from pafu_cli.models.registry import list_models, models_dir, resolve_model


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture
def model_file(rng, tmp_path):
    m = random_model(rng, scale=3)
    m = m.__class__(
        **{
            **m.__dict__,
            "provenance": {
                "command": "pafu train x",
                "seed": 7,
                "data": "d",
                "date": "2026-11-21",
                "quality": '{"test": {"Set5": 33.1}}',
            },
        }
    )
    p = tmp_path / "m.npz"
    save_model(m, p)
    return p


def test_round_trip(model_file, rng):
    m = load_model(model_file)
    want = random_model(np.random.default_rng(20261121), scale=3)
    assert (m.task, m.scale, m.n_kernels, m.in_channels, m.out_channels) == ("upscale", 3, 5, 3, 27)
    np.testing.assert_array_equal(m.bank, want.bank)
    for a, b in zip(m.selector_weights, want.selector_weights):
        np.testing.assert_array_equal(a, b)
    assert m.kernel_sizes.tolist() == [5, 3, 5, 1, 3]
    assert m.provenance["seed"] == 7 and m.quality == {"test": {"Set5": 33.1}}


def _rewrite(path, tmp_path, **changes):
    a = _arrays(path)
    for k, v in changes.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    out = tmp_path / "bad.npz"
    np.savez(out, **a)
    return out


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"bank": None}, "missing key(s) bank"),
        ({"format_version": np.int64(3)}, "unknown format_version 3; this pafu reads versions 1 or 2"),
        ({"format_version": np.int64(0)}, "unknown format_version 0"),
        ({"format_version": None}, "missing key(s) format_version"),
        ({"format_version": np.float64(2)}, "key 'format_version' must be an integer"),
        ({"family": np.array("pac2")}, "unknown model family 'pac2'; this pafu knows pac, pafu or pafunet"),
        ({"family": None}, "missing key family (format_version 2)"),
        ({"family": np.array(["pafu"])}, "key 'family' must be a string"),
        ({"format_version": np.int64(1), "family": np.array("pac2")}, None),  # v1: always pafu
        ({"task": np.array("denoise")}, "task 'denoise' is invalid"),
        ({"scale": np.int64(5)}, "scale must be 2, 3 or 4"),
        ({"input_layout": np.array("bayer_packed_rggb")}, "does not fit task upscale"),
        ({"selector_activation": np.array("tanh")}, "'tanh' is not supported"),
        ({"selector_w1": None}, "missing key selector_w1"),
        ({"kernel_sizes": np.array([5, 3, 5, 1, 4], np.int32)}, "must be odd"),
        ({"kernel_sizes": np.array([5, 3, 5, 3, 3], np.int32)}, None),  # valid: 3x3 holds a 1x1
        ({"selector_b0": np.zeros(4, np.float32)}, "selector_b0 has shape"),
        ({"selector_input_mean": np.zeros(4, np.float32)}, "selector_input_mean/scale"),
        ({"bank": np.zeros((5, 12, 3, 5, 5), np.float32)}, "needs 27 x 3"),
        ({"bank": np.zeros((4, 27, 3, 5, 5), np.float32)}, "kernel_sizes must be 4 integers"),
        ({"bank": np.zeros((5, 27, 3, 4, 4), np.float32)}, "K odd"),
        ({"task": np.array(["upscale"])}, "must be a string"),
        ({"scale": np.float32(3)}, "must be an integer"),
        ({"noise_sigma": np.float64(0.02)}, "only meaningful for demosaick"),
        ({"noise_sigma": np.float64(-0.1)}, "noise_sigma must be a float in [0, 1)"),
        ({"noise_sigma": np.array([0.02])}, "noise_sigma must be a float in [0, 1)"),
        ({"mix": np.int64(3)}, "mix must be one of 1, 2, got 3"),
        ({"mix": np.float64(2)}, "key 'mix' must be an integer"),
    ],
)
def test_rejections(model_file, tmp_path, changes, message):
    bad = _rewrite(model_file, tmp_path, **changes)
    if message is None:
        assert load_model(bad).kernel_sizes.tolist() in ([5, 3, 5, 3, 3], [5, 3, 5, 1, 3])
        return
    with pytest.raises(ModelError) as e:
        load_model(bad)
    assert str(e.value).startswith(f"{bad}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_noise_level_round_trip(rng, tmp_path):
    m = random_model(rng, task="demosaick")
    assert m.noise_sigma == 0.0
    save_model(m.__class__(**{**m.__dict__, "noise_sigma": 10 / 255}), tmp_path / "dn.npz")
    assert load_model(tmp_path / "dn.npz").noise_sigma == pytest.approx(10 / 255)
    save_model(m, tmp_path / "clean.npz")
    assert "noise_sigma" not in _arrays(tmp_path / "clean.npz")
    assert load_model(tmp_path / "clean.npz").noise_sigma == 0.0


def test_mix_round_trip_and_needs_two_kernels(rng, tmp_path):
    m = random_model(rng)
    assert m.mix == 1
    save_model(m, tmp_path / "argmax.npz")
    assert "mix" not in _arrays(tmp_path / "argmax.npz") and load_model(tmp_path / "argmax.npz").mix == 1
    save_model(m.__class__(**{**m.__dict__, "mix": 2}), tmp_path / "blend.npz")
    assert load_model(tmp_path / "blend.npz").mix == 2
    one = random_model(rng, kernel_sizes=(3,))
    save_model(one.__class__(**{**one.__dict__, "mix": 2}), tmp_path / "one.npz")
    with pytest.raises(ModelError, match="mix 2 needs at least 2 kernels, the bank has 1"):
        load_model(tmp_path / "one.npz")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_rejects_nan_inf(model_file, tmp_path, bad_value):
    bank = _arrays(model_file)["bank"].copy()
    bank[0, 0, 0, 2, 2] = bad_value
    with pytest.raises(ModelError, match="NaN or Inf"):
        load_model(_rewrite(model_file, tmp_path, bank=bank))


def test_rejects_taps_outside_support(model_file, tmp_path):
    bank = _arrays(model_file)["bank"].copy()
    bank[3, 0, 0, 0, 0] = 0.5  # kernel 3 is declared 1x1
    with pytest.raises(ModelError, match="kernel 3 has non-zero taps outside its 1x1 support"):
        load_model(_rewrite(model_file, tmp_path, bank=bank))


def test_rejects_pickles_and_non_npz(model_file, tmp_path):
    pickled = tmp_path / "pickled.npz"
    a = _arrays(model_file)
    a["description"] = np.array([{"evil": 1}], dtype=object)
    np.savez(pickled, **a)
    with pytest.raises(ModelError, match="'description' holds Python objects"):
        load_model(pickled)
    text = tmp_path / "notes.npz"
    text.write_text("not a zip")
    with pytest.raises(ModelError, match="not a .npz model file \\(no zip archive\\)"):
        load_model(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ModelError, match="no zip archive"):
        load_model(single)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(model_file.read_bytes()[:-100])
    with pytest.raises(ModelError, match="damaged or truncated"):
        load_model(truncated)


def test_declared_array_sizes_are_checked_before_reading(model_file, tmp_path, monkeypatch):
    """A header that declares 10^12 elements, or more than the limit, is refused from
    the header alone; the limit is raised with PAFU_MAX_MODEL_BYTES."""
    import zipfile

    huge = tmp_path / "huge.npz"
    with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(huge, "w") as dst:
        for m in src.infolist():
            data = src.read(m)
            if m.filename == "bank.npy":
                head = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
                head["shape"] = (10**12,)
                buf = __import__("io").BytesIO()
                np.lib.format.write_array_header_1_0(buf, head)
                data = buf.getvalue() + b"\0" * 64
            dst.writestr(m, data)
    with pytest.raises(ModelError, match="'bank' declares more data than the file holds"):
        load_model(huge)
    monkeypatch.setenv("PAFU_MAX_MODEL_BYTES", "1K")
    with pytest.raises(ModelError, match="PAFU_MAX_MODEL_BYTES"):
        load_model(model_file)
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "missing.npz")


def test_resolve_checks_task_and_scale(model_file):
    assert resolve_model(str(model_file), "upscale", 3).scale == 3
    with pytest.raises(ModelError, match="upscales x3, x2 was asked for"):
        resolve_model(str(model_file), "upscale", 2)
    with pytest.raises(ModelError, match="this is a upscale model"):
        resolve_model(str(model_file), "demosaick")
    with pytest.raises(ModelError, match="no such shipped model"):
        resolve_model("no_such_model", "upscale", 2)


def test_shipped_models_load_and_are_defaults():
    names = list_models()
    for name in (
        "demosaick",
        "demosaick_denoise_s2",
        "demosaick_denoise_s5",
        "demosaick_denoise_s10",
        "upscale_x2",
        "upscale_x3",
        "upscale_x4",
    ):
        assert name in names
    from pafu_cli.models.choice import denoise_family

    assert [round(s * 255, 3) for s, _ in denoise_family()] == [2, 5, 10]
    for task, scale in (("demosaick", 1), ("upscale", 2), ("upscale", 3), ("upscale", 4)):
        m = resolve_model(None, task, scale)
        assert m.task == task and m.scale == scale
        assert m.provenance["command"].startswith("pafu train")
        assert m.provenance["seed"] is not None and m.provenance["data"]
        assert m.quality.get("test"), f"{m.name} has no measured test PSNR recorded"


def test_every_shipped_model_resolves_for_its_task_and_records_its_training():
    """Each file in models/, of any family, loads by its name for its own task and
    scale, and records the command, seed and data it was trained with."""
    for name in list_models():
        m = load_model(models_dir() / f"{name}.npz")
        again = resolve_model(name, m.task, m.scale)
        assert (again.family, again.task, again.path) == (m.family, m.task, m.path), name
        assert m.provenance["command"].startswith("pafu train"), name
        assert m.provenance["seed"] is not None and m.provenance["data"], name


def _equal_models(a, b):
    for f in dataclasses.fields(PafuModel):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, tuple):
            assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)), f.name
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y) and x.dtype == y.dtype, f.name
        else:
            assert x == y, f.name


def test_saves_version_2_with_family(model_file):
    a = _arrays(model_file)
    assert int(a["format_version"]) == 2 and str(a["family"]) == "pafu"
    m = load_model(model_file)
    assert m.family == PafuModel.family == "pafu"
    assert "family" not in {f.name for f in dataclasses.fields(PafuModel)}  # a class attribute


def test_version_1_files_load_as_pafu(model_file, tmp_path):
    v1 = _rewrite(model_file, tmp_path, format_version=np.int64(1), family=None)
    old, new = load_model(v1), load_model(model_file)
    _equal_models(old, dataclasses.replace(new, path=old.path))
    pafu = 0
    for name in list_models():  # every shipped pafu model is a version-1 file
        a = _arrays(models_dir() / f"{name}.npz")
        family = load_model(models_dir() / f"{name}.npz").family
        if family == "pafu":
            assert int(a["format_version"]) == 1 and "family" not in a, name
            pafu += 1
        else:  # other families came with version 2, which names them
            assert int(a["format_version"]) == 2 and str(a["family"]) == family, name
    assert pafu, "no shipped pafu model: version-1 files are no longer exercised"
    again = tmp_path / "again.npz"  # and saving one writes version 2, arrays unchanged
    shipped = load_model(models_dir() / "demosaick.npz")
    save_model(shipped, again)
    assert int(_arrays(again)["format_version"]) == 2
    _equal_models(load_model(again), dataclasses.replace(shipped, path=str(again)))


def test_loading_never_allows_pickles(model_file, monkeypatch):
    seen = []
    real = np.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("allow_pickle"))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    load_model(model_file)
    assert seen == [False]


def test_pafu_task_table():
    assert list(TASKS) == ["demosaick", "upscale"]
    assert fmt.FAMILIES["pafu"].tasks is TASKS
    for task, scale, co, shuffle in (("demosaick", 1, 12, 2), ("upscale", 2, 12, 2), ("upscale", 3, 27, 3)):
        spec = TASKS[task]
        assert (spec.out_channels(scale), spec.shuffle(scale)) == (co, shuffle)
    assert not TASKS["demosaick"].scaled and TASKS["upscale"].scaled


@dataclasses.dataclass(frozen=True)
class _Toy:
    """A model of a made-up second family: one gain per channel."""

    family = "toy"
    task: str
    gain: np.ndarray
    scale: int = 1
    name: str = ""
    path: str = ""


def _toy_family():
    def parse(f, path):
        return _Toy(task=str(f["task"]), gain=f["gain"].copy(), name="toy", path=path)

    def to_arrays(model):
        return {"task": np.array(model.task), "gain": np.asarray(model.gain, np.float32)}

    tasks = {"brighten": dataclasses.make_dataclass("Spec", [("scaled", bool, False)])()}
    return fmt.Family(parse, to_arrays, tasks, _Toy)


def test_a_new_family_loads_through_the_registry(tmp_path, monkeypatch, model_file):
    monkeypatch.setitem(fmt.FAMILIES, "toy", _toy_family())
    toy = _Toy(task="brighten", gain=np.array([1.5, 2.0, 0.5], np.float32))
    p = tmp_path / "toy.npz"
    save_model(toy, p)
    a = _arrays(p)
    assert (int(a["format_version"]), str(a["family"])) == (2, "toy") and set(a) == {
        "format_version",
        "family",
        "task",
        "gain",
    }
    m = load_model(p)
    assert isinstance(m, _Toy) and m.path == str(p) and np.array_equal(m.gain, toy.gain)
    again = resolve_model(str(p), "brighten")
    assert isinstance(again, _Toy) and np.array_equal(again.gain, toy.gain)
    assert resolve_model(m, "brighten") is m
    with pytest.raises(ModelError, match="this is a brighten model, upscale needs"):
        resolve_model(str(p), "upscale", 2)
    assert load_model(model_file).family == "pafu"  # the pafu family is untouched
    bad = _rewrite(p, tmp_path, family=np.array("pac2"))
    with pytest.raises(ModelError, match="this pafu knows pac, pafu, pafunet or toy"):
        load_model(bad)


def test_analytic_models_by_name():
    m = resolve_model("bilinear", "upscale", 3)
    assert (m.name, m.scale, m.shuffle, m.family) == ("bilinear_x3", 3, 3, "pafu")
    assert resolve_model("nearest", "upscale", 2).name == "nearest_x2"
    d = resolve_model("bilinear", "demosaick")
    assert (d.task, d.input_layout, d.out_channels, d.shuffle) == ("demosaick", "bayer_packed_rggb", 12, 2)

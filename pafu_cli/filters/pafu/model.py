"""The PAFU schema of the ``.npz`` model format: a selector network plus its kernel bank.

A model file is an ``.npz`` archive of arrays only (strings are 0-d unicode
arrays), read with ``allow_pickle=False``. :mod:`pafu_cli.models.format`
opens it, reads the envelope, and hands the archive to the parser of its
filter family (:data:`pafu_cli.models.format.FAMILIES`); this module is the
parser of the ``pafu`` family. Every problem is a one-line
:class:`~pafu_cli.errors.ModelError` naming the file.

Envelope (every family):

==========================  ==================================================
key                         meaning
==========================  ==================================================
``format_version``          int: 1 or 2; pafu writes 2. Version 2 adds
                            ``family``; a family's own keys do not change
``family``                  string, version 2 (required there): the filter
                            family whose schema the other keys follow,
                            ``"pafu"`` (this module); version-1 files have no
                            such key and are ``"pafu"``
``task``                    string: one of the family's tasks (for ``pafu``,
                            the table below)
==========================  ==================================================

Tasks of the ``pafu`` family (:data:`TASKS`):

=============  =====================  ====  =====  =========  =======
task           ``input_layout``       C_in  C_out  ``scale``  shuffle
=============  =====================  ====  =====  =========  =======
``demosaick``  ``bayer_packed_rggb``  4     12     1          2
``upscale``    ``rgb``                3     3 s^2  2, 3, 4    s
=============  =====================  ====  =====  =========  =======

C_in and C_out are the bank's; shuffle is the depth-to-space factor of its output.

Keys of the ``pafu`` family:

==========================  ==================================================
key                         meaning
==========================  ==================================================
``scale``                   int; upscale factor s (2, 3, 4); 1 for demosaick
``input_layout``            ``"rgb"`` (upscale: H x W x 3 in [0, 1]) or
                            ``"bayer_packed_rggb"`` (demosaick: the mosaic
                            phase-shifted to RGGB and packed into H/2 x W/2 x 4
                            quads R, G1, G2, B)
``selector_input_mean``     (C_in,) float32; the selector sees
``selector_input_scale``    ``(x - mean) * scale`` (the bank sees plain x)
``selector_activation``     ``"relu"`` (between layers, not after the last)
``selector_layers``         int L >= 1
``selector_w{i}``           (C_out, C_in, k, k) float32, k odd, i = 0..L-1;
                            layer i's C_in is layer i-1's C_out; the last
                            layer has n outputs (one logit per kernel)
``selector_b{i}``           (C_out,) float32
``bank``                    (n, C_out, C_in, K, K) float32, K odd; C_out is
                            3 s^2 (upscale) or 12 (demosaick: 4 quad
                            positions x RGB); channel ``c*f*f + dy*f + dx``
                            goes to sub-pixel (dy, dx) of colour c, f the
                            task's shuffle (depth-to-space factor)
``kernel_sizes``            (n,) int32: each kernel's own odd support <= K;
                            smaller kernels are zero-padded to K x K
``name``, ``description``   optional strings (default: the file's stem, "")
``provenance_command``      optional string: the training command line
``provenance_seed``         optional int
``provenance_data``         optional string: training data description
``provenance_date``         optional string: ISO date of the export
``provenance_quality``      optional JSON string of measured PSNRs (``"{}"``)
``noise_sigma``             optional float, demosaick only: the mosaic noise
                            level (Gaussian sigma, 0..1 units) the model is
                            made for; absent or 0 = noise-free. ``--denoise``
                            picks among the shipped ``demosaick*`` models by
                            this value and the file's estimated noise.
``mix``                     optional int, 1 or 2: kernels blended per pixel;
                            absent or 1 = the argmax kernel alone
==========================  ==================================================

Padding is reflection at every layer and for the bank. Inference: logits from
the selector, per-pixel argmax (first maximum wins), the selected kernel is
applied, then depth-to-space by the task's shuffle (s for upscale, 2 for
demosaick). With ``mix`` 2 the pixel's filter is ``w1 W_a + (1 - w1) W_b``:
``a`` the argmax, ``b`` the largest of the other logits (first maximum wins),
``w1 = 1 / (1 + exp(l_b - l_a))`` the softmax weight of the two (still one
linear filter per pixel).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from pafu_cli.errors import ModelError

FAMILY = "pafu"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task fixes in a PAFU model: the input layout and channels, the
    bank's outputs and depth-to-space factor (functions of the scale), the
    allowed scales, and whether a model may declare a noise level."""

    layout: str
    in_channels: int
    out_channels: Callable[[int], int]
    shuffle: Callable[[int], int]
    scales: tuple
    noise_level: bool = False

    @property
    def scaled(self) -> bool:
        """Whether the task has a choice of scale (the caller's scale must then match)."""
        return len(self.scales) > 1


TASKS = {
    "demosaick": TaskSpec("bayer_packed_rggb", 4, lambda s: 12, lambda s: 2, scales=(1,), noise_level=True),
    "upscale": TaskSpec("rgb", 3, lambda s: 3 * s * s, lambda s: s, scales=(2, 3, 4)),
}


LAYOUTS = {task: spec.layout for task, spec in TASKS.items()}


ACTIVATIONS = ("relu",)


MIX_CHOICES = (1, 2)  # kernels blended per pixel (see the format table)


PROVENANCE_KEYS = (
    "provenance_command",
    "provenance_data",
    "provenance_date",
    "provenance_quality",
)


@dataclasses.dataclass(frozen=True)
class PafuModel:
    """A validated PAFU model: selector layers and kernel bank, float32, C-contiguous."""

    family: ClassVar[str] = FAMILY

    task: str
    scale: int
    input_layout: str
    selector_weights: tuple  # of (Co, Ci, k, k)
    selector_biases: tuple  # of (Co,)
    selector_input_mean: np.ndarray
    selector_input_scale: np.ndarray
    bank: np.ndarray  # (n, Co, Ci, K, K)
    kernel_sizes: np.ndarray  # (n,) int32
    activation: str = "relu"
    name: str = ""
    description: str = ""
    provenance: dict = dataclasses.field(default_factory=dict)
    path: str = ""
    noise_sigma: float = 0.0  # demosaick: noise level the model is made for (0 = noise-free)
    mix: int = 1  # kernels blended per pixel: 1 = argmax, 2 = the top two by their softmax weights

    @property
    def n_kernels(self) -> int:
        return self.bank.shape[0]

    @property
    def in_channels(self) -> int:
        return self.bank.shape[2]

    @property
    def out_channels(self) -> int:
        return self.bank.shape[1]

    @property
    def shuffle(self) -> int:
        """Depth-to-space factor of the bank's output."""
        return TASKS[self.task].shuffle(self.scale)

    @property
    def quality(self) -> dict:
        try:
            return json.loads(self.provenance.get("quality", "{}") or "{}")
        except json.JSONDecodeError:
            return {}


def expected_out_channels(task: str, scale: int) -> int:
    """Bank outputs of a ``task`` model at ``scale``."""
    return TASKS[task].out_channels(scale)


def one_of(values) -> str:
    """``(2, 3, 4)`` -> ``"2, 3 or 4"``, for messages."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


# Key readers: each checks one archive entry and names the file and the key
# when it is wrong (the envelope in pafu_cli.models.format uses them too).


def fail(path, msg):
    """Raise the one-line :class:`ModelError` ``"<path>: <msg>"``."""
    raise ModelError(f"{path}: {msg}")


def read_str(f, key, path) -> str:
    a = f[key]
    if a.dtype.kind != "U" or a.ndim != 0:
        fail(path, f"key '{key}' must be a string, got dtype {a.dtype} shape {a.shape}")
    return str(a)


def read_int(f, key, path) -> int:
    a = f[key]
    if a.dtype.kind not in "iu" or a.size != 1:
        fail(path, f"key '{key}' must be an integer, got dtype {a.dtype} shape {a.shape}")
    return int(a.reshape(()))


def read_floats(f, key, path, ndim) -> np.ndarray:
    a = f[key]
    if a.dtype.kind != "f" or a.ndim != ndim:
        fail(path, f"key '{key}' must be a {ndim}-D float array, got dtype {a.dtype} shape {a.shape}")
    if not np.all(np.isfinite(a)):
        fail(path, f"key '{key}' contains NaN or Inf values; re-export the model")
    return np.ascontiguousarray(a, dtype=np.float32)


def read_provenance(f, path) -> dict:
    """A model's provenance from its ``provenance_*`` keys (any family)."""
    keys = set(f.files)
    prov = {k[len("provenance_") :]: read_str(f, k, path) if k in keys else "" for k in PROVENANCE_KEYS}
    prov["seed"] = read_int(f, "provenance_seed", path) if "provenance_seed" in keys else None
    return prov


def provenance_arrays(prov) -> dict:
    """The ``provenance_*`` keys of a provenance dict (any family)."""
    prov = prov or {}
    arrays = {k: np.array(str(prov.get(k[len("provenance_") :], "") or "")) for k in PROVENANCE_KEYS}
    if prov.get("seed") is not None:
        arrays["provenance_seed"] = np.int64(prov["seed"])
    return arrays


REQUIRED_KEYS = (
    "task",
    "scale",
    "input_layout",
    "selector_input_mean",
    "selector_input_scale",
    "selector_activation",
    "selector_layers",
    "bank",
    "kernel_sizes",
)


def parse(f, path) -> PafuModel:
    """Validate the ``pafu`` keys of an open archive ``f`` (the envelope is
    :mod:`pafu_cli.models.format`'s) and build the model."""
    keys = set(f.files)
    missing = sorted(set(REQUIRED_KEYS) - keys)
    if missing:
        fail(path, f"missing key(s) {', '.join(missing)}; is this a pafu model?")
    task = read_str(f, "task", path)
    if task not in TASKS:
        fail(path, f"task '{task}' is invalid, expected one of {', '.join(TASKS)}")
    spec = TASKS[task]
    scale = read_int(f, "scale", path)
    if scale not in spec.scales:
        fail(path, f"{task} scale must be {one_of(spec.scales)}, got {scale}")
    layout = read_str(f, "input_layout", path)
    if layout != spec.layout:
        fail(path, f"input_layout '{layout}' does not fit task {task} (expected '{spec.layout}')")
    activation = read_str(f, "selector_activation", path)
    if activation not in ACTIVATIONS:
        fail(path, f"selector_activation '{activation}' is not supported ({', '.join(ACTIVATIONS)})")

    bank = read_floats(f, "bank", path, 5)
    n, co, ci, kh, kw = bank.shape
    if n < 1 or kh != kw or kh % 2 == 0:
        fail(path, f"bank must be (n, C_out, C_in, K, K) with n >= 1 and K odd, got {bank.shape}")
    want_co, want_ci = spec.out_channels(scale), spec.in_channels
    if co != want_co or ci != want_ci:
        fail(path, f"bank has {co} outputs x {ci} inputs, task {task} x{scale} needs {want_co} x {want_ci}")
    sizes = _kernel_sizes(f, path, bank)
    weights, biases = _selector(f, path, ci, n)
    mean = read_floats(f, "selector_input_mean", path, 1)
    scl = read_floats(f, "selector_input_scale", path, 1)
    if mean.shape != (ci,) or scl.shape != (ci,):
        fail(path, f"selector_input_mean/scale must have shape ({ci},)")

    prov = read_provenance(f, path)
    noise_sigma = 0.0
    if "noise_sigma" in keys:
        a = f["noise_sigma"]
        if a.shape != () or a.dtype.kind != "f" or not np.isfinite(a) or not 0 <= float(a) < 1:
            fail(path, "noise_sigma must be a float in [0, 1)")
        if not spec.noise_level and float(a) != 0:
            fail(path, "noise_sigma is only meaningful for demosaick models")
        noise_sigma = float(a)
    mix = read_int(f, "mix", path) if "mix" in keys else 1
    if mix not in MIX_CHOICES:
        fail(path, f"mix must be one of {', '.join(map(str, MIX_CHOICES))}, got {mix}")
    if mix > n:
        fail(path, f"mix {mix} needs at least {mix} kernels, the bank has {n}")
    return PafuModel(
        task=task,
        scale=scale,
        input_layout=layout,
        selector_weights=weights,
        selector_biases=biases,
        selector_input_mean=mean,
        selector_input_scale=scl,
        bank=bank,
        kernel_sizes=sizes,
        activation=activation,
        name=read_str(f, "name", path) if "name" in keys else Path(path).stem,
        description=read_str(f, "description", path) if "description" in keys else "",
        provenance=prov,
        path=path,
        noise_sigma=noise_sigma,
        mix=mix,
    )


def _kernel_sizes(f, path, bank) -> np.ndarray:
    """``kernel_sizes`` checked against the bank: odd, at most K, no tap outside."""
    n, kh = bank.shape[0], bank.shape[3]
    sizes = f["kernel_sizes"]
    if sizes.dtype.kind not in "iu" or sizes.shape != (n,):
        fail(path, f"kernel_sizes must be {n} integers, got dtype {sizes.dtype} shape {sizes.shape}")
    sizes = sizes.astype(np.int32)
    for z, k in enumerate(sizes):
        if k < 1 or k > kh or k % 2 == 0:
            fail(path, f"kernel_sizes[{z}] = {k} must be odd and at most {kh}")
        m = (kh - k) // 2
        inner = np.zeros((kh, kh), dtype=bool)
        inner[m : m + k, m : m + k] = True
        if np.any(bank[z][:, :, ~inner] != 0):
            fail(path, f"kernel {z} has non-zero taps outside its {k}x{k} support")
    return sizes


def _selector(f, path, ci: int, n: int) -> tuple:
    """The selector's (weights, biases), chained from ``ci`` inputs to ``n`` logits."""
    keys = set(f.files)
    n_layers = read_int(f, "selector_layers", path)
    if n_layers < 1:
        fail(path, f"selector_layers must be >= 1, got {n_layers}")
    weights, biases = [], []
    prev = ci
    for i in range(n_layers):
        for key in (f"selector_w{i}", f"selector_b{i}"):
            if key not in keys:
                fail(path, f"missing key {key} (selector_layers = {n_layers})")
        w = read_floats(f, f"selector_w{i}", path, 4)
        b = read_floats(f, f"selector_b{i}", path, 1)
        if w.shape[1] != prev or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
            fail(path, f"selector_w{i} has shape {w.shape}, expected ({'C_out'}, {prev}, k, k), k odd")
        if b.shape != (w.shape[0],):
            fail(path, f"selector_b{i} has shape {b.shape}, expected ({w.shape[0]},)")
        prev = w.shape[0]
        weights.append(w)
        biases.append(b)
    if prev != n:
        fail(path, f"selector outputs {prev} logits but the bank has {n} kernels")
    return tuple(weights), tuple(biases)


def to_arrays(model: PafuModel) -> dict:
    """The ``pafu`` keys of ``model`` (the envelope is added by the writer)."""
    arrays = {
        "task": np.array(model.task),
        "scale": np.int64(model.scale),
        "input_layout": np.array(model.input_layout),
        "selector_input_mean": np.asarray(model.selector_input_mean, np.float32),
        "selector_input_scale": np.asarray(model.selector_input_scale, np.float32),
        "selector_activation": np.array(model.activation),
        "selector_layers": np.int64(len(model.selector_weights)),
        "bank": np.asarray(model.bank, np.float32),
        "kernel_sizes": np.asarray(model.kernel_sizes, np.int32),
        "name": np.array(model.name),
        "description": np.array(model.description),
    }
    for i, (w, b) in enumerate(zip(model.selector_weights, model.selector_biases)):
        arrays[f"selector_w{i}"] = np.asarray(w, np.float32)
        arrays[f"selector_b{i}"] = np.asarray(b, np.float32)
    arrays.update(provenance_arrays(model.provenance))
    if model.noise_sigma:
        arrays["noise_sigma"] = np.float64(model.noise_sigma)
    if model.mix != 1:
        arrays["mix"] = np.int64(model.mix)
    return arrays


def load_model(path):
    """Load and validate a model file of any family; the same function as
    :func:`pafu_cli.models.format.load_model` (this import path is kept)."""
    from pafu_cli.models.format import load_model as load

    return load(path)


def save_model(model, path) -> None:
    """Write ``model`` in the current format version; the same function as
    :func:`pafu_cli.models.format.save_model` (this import path is kept)."""
    from pafu_cli.models.format import save_model as save

    save(model, path)


def receptive_margin(model: PafuModel) -> int:
    """Pixels (at the model's input resolution) that influence one output quad/pixel."""
    radii = [(w.shape[2] - 1) // 2 for w in model.selector_weights]
    reach = max(sum(radii), (model.bank.shape[3] - 1) // 2)
    fb = getattr(model, "feature_bank", None)
    if fb is not None:  # the bank also reads the last hidden layer, fr around each pixel
        reach = max(reach, sum(radii[:-1]) + (fb.shape[3] - 1) // 2)
    return reach


# The ``pafunet`` family: a PAFU model whose kernels also read the selector's
# last hidden layer (a small non-linear network ending in a PAFU unit).

NET_FAMILY = "pafunet"


@dataclasses.dataclass(frozen=True)
class PafuNetModel(PafuModel):
    """A PAFU model whose selected kernel is applied to the input *and* to the
    selector's last hidden features: ``feature_bank`` (n, C_out, C_h, kf, kf),
    kf odd and at most the bank's K, C_h the last hidden layer's width. The
    output of pixel p is ``sum(bank[z] * x_patch) + sum(feature_bank[z] *
    h_patch)``, z the chosen kernel (blended as the ``mix`` says), h the ReLU
    output of selector layer L-2, reflect-padded. The selector is then also the
    network's feature trunk: the filter is linear in x given h, and h is not."""

    family: ClassVar[str] = NET_FAMILY

    feature_bank: np.ndarray = None

    @property
    def feature_channels(self) -> int:
        return self.feature_bank.shape[2]

    @property
    def feature_radius(self) -> int:
        return (self.feature_bank.shape[3] - 1) // 2


def with_features(model: PafuModel, feature_bank) -> PafuNetModel:
    """``model`` (a PAFU model) with a feature bank: a :class:`PafuNetModel`.
    Raises ValueError unless ``feature_bank`` is (n, C_out, C_h, kf, kf) with kf
    odd and at most the bank's K (the engine reads it within the bank's margin)."""
    fb = np.asarray(feature_bank)
    n, co, _, k, _ = model.bank.shape
    ch = model.selector_weights[-2].shape[0] if len(model.selector_weights) > 1 else -1
    if fb.shape[:3] != (n, co, ch) or fb.ndim != 5 or fb.shape[3] != fb.shape[4] or fb.shape[3] % 2 == 0:
        raise ValueError(
            f"feature bank of shape {fb.shape} does not fit: expected ({n}, {co}, {ch}, kf, kf), kf odd"
        )
    if fb.shape[3] > k:
        raise ValueError(f"feature kernels of {fb.shape[3]}x{fb.shape[3]} exceed the bank's {k}x{k}")
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(PafuModel)}
    return PafuNetModel(**fields, feature_bank=np.ascontiguousarray(feature_bank, dtype=np.float32))


def parse_net(f, path) -> PafuNetModel:
    """Validate the ``pafunet`` keys of an open archive: the ``pafu`` keys plus
    ``feature_bank`` (see :class:`PafuNetModel`)."""
    base = parse(f, path)
    if "feature_bank" not in f.files:
        fail(path, "missing key feature_bank; is this a pafunet model?")
    fb = read_floats(f, "feature_bank", path, 5)
    n, co = base.bank.shape[:2]
    if len(base.selector_weights) < 2:
        fail(path, "a pafunet model needs a selector with a hidden layer (selector_layers >= 2)")
    ch = base.selector_weights[-2].shape[0]
    kf = fb.shape[3]
    if fb.shape[:3] != (n, co, ch) or fb.shape[3] != fb.shape[4] or kf % 2 == 0 or kf > base.bank.shape[3]:
        fail(
            path,
            f"feature_bank has shape {fb.shape}, expected ({n}, {co}, {ch}, kf, kf) with kf odd and "
            f"at most the bank's {base.bank.shape[3]}",
        )
    return with_features(base, fb)


def to_arrays_net(model: PafuNetModel) -> dict:
    """The ``pafunet`` keys of ``model``."""
    arrays = to_arrays(model)
    arrays["feature_bank"] = np.asarray(model.feature_bank, np.float32)
    return arrays

"""The ``.npz`` model format: a PAFU selector network plus its kernel bank.

Format version 1 (all arrays; strings are 0-d unicode arrays, so files load
with ``allow_pickle=False``):

==========================  ==================================================
key                         meaning
==========================  ==================================================
``format_version``          int, 1
``task``                    ``"demosaick"`` or ``"upscale"``
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
                            positions x RGB); channel ``c*s*s + dy*s + dx``
                            goes to sub-pixel (dy, dx) of colour c
``kernel_sizes``            (n,) int32: each kernel's own odd support <= K;
                            smaller kernels are zero-padded to K x K
``name``, ``description``   strings
``provenance_command``      the training command line
``provenance_seed``         int
``provenance_data``         training data description
``provenance_date``         ISO date of the export
``provenance_quality``      JSON string of measured PSNRs (may be ``"{}"``)
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
applied, then depth-to-space by s (upscale) or 2 (demosaick). With ``mix`` 2
the pixel's filter is ``w1 W_a + (1 - w1) W_b``: ``a`` the argmax, ``b`` the
largest of the other logits (first maximum wins), ``w1 = 1 / (1 + exp(l_b -
l_a))`` the softmax weight of the two (still one linear filter per pixel).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from pafu_cli.errors import ModelError

FORMAT_VERSION = 1


TASKS = ("demosaick", "upscale")


LAYOUTS = {"demosaick": "bayer_packed_rggb", "upscale": "rgb"}


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
        return 2 if self.task == "demosaick" else self.scale

    @property
    def quality(self) -> dict:
        try:
            return json.loads(self.provenance.get("quality", "{}") or "{}")
        except json.JSONDecodeError:
            return {}


def expected_out_channels(task: str, scale: int) -> int:
    return 12 if task == "demosaick" else 3 * scale * scale


def _fail(path, msg):
    raise ModelError(f"{path}: {msg}")


def _str(f, key, path):
    a = f[key]
    if a.dtype.kind != "U" or a.ndim != 0:
        _fail(path, f"key '{key}' must be a string, got dtype {a.dtype} shape {a.shape}")
    return str(a)


def _int(f, key, path):
    a = f[key]
    if a.dtype.kind not in "iu" or a.size != 1:
        _fail(path, f"key '{key}' must be an integer, got dtype {a.dtype} shape {a.shape}")
    return int(a.reshape(()))


def _float_array(f, key, path, ndim):
    a = f[key]
    if a.dtype.kind != "f" or a.ndim != ndim:
        _fail(path, f"key '{key}' must be a {ndim}-D float array, got dtype {a.dtype} shape {a.shape}")
    if not np.all(np.isfinite(a)):
        _fail(path, f"key '{key}' contains NaN or Inf values; re-export the model")
    return np.ascontiguousarray(a, dtype=np.float32)


def load_model(path) -> PafuModel:
    """Load and validate a model file (``allow_pickle=False``).

    Raises
    ------
    ModelError
        With a one-line message naming the file and the problem.
    """
    path = str(path)
    if not os.path.isfile(path):
        _fail(path, "model file not found")
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as e:  # zip errors, pickled arrays, not an npz at all
        _fail(path, f"not a readable .npz model file ({type(e).__name__}: {e})")
    if not isinstance(f, np.lib.npyio.NpzFile):
        _fail(path, "not an .npz archive (a single .npy array?)")
    try:
        with f:
            return _parse(f, path)
    except ValueError as e:  # object arrays refused by allow_pickle=False
        _fail(path, f"unreadable array ({e}); pickled content is not accepted")


def _parse(f, path) -> PafuModel:
    keys = set(f.files)
    required = {
        "format_version",
        "task",
        "scale",
        "input_layout",
        "selector_input_mean",
        "selector_input_scale",
        "selector_activation",
        "selector_layers",
        "bank",
        "kernel_sizes",
    }
    missing = sorted(required - keys)
    if missing:
        _fail(path, f"missing key(s) {', '.join(missing)}; is this a pafu model?")
    version = _int(f, "format_version", path)
    if version != FORMAT_VERSION:
        _fail(path, f"unknown format_version {version}; this pafu reads version {FORMAT_VERSION}")
    task = _str(f, "task", path)
    if task not in TASKS:
        _fail(path, f"task '{task}' is invalid, expected one of {', '.join(TASKS)}")
    scale = _int(f, "scale", path)
    if task == "upscale" and scale not in (2, 3, 4):
        _fail(path, f"upscale scale must be 2, 3 or 4, got {scale}")
    if task == "demosaick" and scale != 1:
        _fail(path, f"demosaick models have scale 1, got {scale}")
    layout = _str(f, "input_layout", path)
    if layout != LAYOUTS[task]:
        _fail(path, f"input_layout '{layout}' does not fit task {task} (expected '{LAYOUTS[task]}')")
    activation = _str(f, "selector_activation", path)
    if activation not in ACTIVATIONS:
        _fail(path, f"selector_activation '{activation}' is not supported ({', '.join(ACTIVATIONS)})")

    bank = _float_array(f, "bank", path, 5)
    n, co, ci, kh, kw = bank.shape
    if n < 1 or kh != kw or kh % 2 == 0:
        _fail(path, f"bank must be (n, C_out, C_in, K, K) with n >= 1 and K odd, got {bank.shape}")
    want_co = expected_out_channels(task, scale)
    want_ci = 4 if task == "demosaick" else 3
    if co != want_co or ci != want_ci:
        _fail(path, f"bank has {co} outputs x {ci} inputs, task {task} x{scale} needs {want_co} x {want_ci}")
    sizes = f["kernel_sizes"]
    if sizes.dtype.kind not in "iu" or sizes.shape != (n,):
        _fail(path, f"kernel_sizes must be {n} integers, got dtype {sizes.dtype} shape {sizes.shape}")
    sizes = sizes.astype(np.int32)
    for z, k in enumerate(sizes):
        if k < 1 or k > kh or k % 2 == 0:
            _fail(path, f"kernel_sizes[{z}] = {k} must be odd and at most {kh}")
        m = (kh - k) // 2
        inner = np.zeros((kh, kh), dtype=bool)
        inner[m : m + k, m : m + k] = True
        if np.any(bank[z][:, :, ~inner] != 0):
            _fail(path, f"kernel {z} has non-zero taps outside its {k}x{k} support")

    n_layers = _int(f, "selector_layers", path)
    if n_layers < 1:
        _fail(path, f"selector_layers must be >= 1, got {n_layers}")
    weights, biases = [], []
    prev = ci
    for i in range(n_layers):
        for key in (f"selector_w{i}", f"selector_b{i}"):
            if key not in keys:
                _fail(path, f"missing key {key} (selector_layers = {n_layers})")
        w = _float_array(f, f"selector_w{i}", path, 4)
        b = _float_array(f, f"selector_b{i}", path, 1)
        if w.shape[1] != prev or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
            _fail(path, f"selector_w{i} has shape {w.shape}, expected ({'C_out'}, {prev}, k, k), k odd")
        if b.shape != (w.shape[0],):
            _fail(path, f"selector_b{i} has shape {b.shape}, expected ({w.shape[0]},)")
        prev = w.shape[0]
        weights.append(w)
        biases.append(b)
    if prev != n:
        _fail(path, f"selector outputs {prev} logits but the bank has {n} kernels")
    mean = _float_array(f, "selector_input_mean", path, 1)
    scl = _float_array(f, "selector_input_scale", path, 1)
    if mean.shape != (ci,) or scl.shape != (ci,):
        _fail(path, f"selector_input_mean/scale must have shape ({ci},)")

    prov = {}
    for key in PROVENANCE_KEYS:
        prov[key[len("provenance_") :]] = _str(f, key, path) if key in keys else ""
    prov["seed"] = _int(f, "provenance_seed", path) if "provenance_seed" in keys else None
    noise_sigma = 0.0
    if "noise_sigma" in keys:
        a = f["noise_sigma"]
        if a.shape != () or a.dtype.kind != "f" or not np.isfinite(a) or not 0 <= float(a) < 1:
            _fail(path, "noise_sigma must be a float in [0, 1)")
        if task != "demosaick" and float(a) != 0:
            _fail(path, "noise_sigma is only meaningful for demosaick models")
        noise_sigma = float(a)
    mix = _int(f, "mix", path) if "mix" in keys else 1
    if mix not in MIX_CHOICES:
        _fail(path, f"mix must be one of {', '.join(map(str, MIX_CHOICES))}, got {mix}")
    if mix > n:
        _fail(path, f"mix {mix} needs at least {mix} kernels, the bank has {n}")
    return PafuModel(
        task=task,
        scale=scale,
        input_layout=layout,
        selector_weights=tuple(weights),
        selector_biases=tuple(biases),
        selector_input_mean=mean,
        selector_input_scale=scl,
        bank=bank,
        kernel_sizes=sizes,
        activation=activation,
        name=_str(f, "name", path) if "name" in keys else Path(path).stem,
        description=_str(f, "description", path) if "description" in keys else "",
        provenance=prov,
        path=path,
        noise_sigma=noise_sigma,
        mix=mix,
    )


def save_model(model: PafuModel, path) -> None:
    """Write ``model`` in format version 1 (atomically: temp file, then rename)."""
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
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
    prov = model.provenance or {}
    for key in PROVENANCE_KEYS:
        arrays[key] = np.array(str(prov.get(key[len("provenance_") :], "") or ""))
    if prov.get("seed") is not None:
        arrays["provenance_seed"] = np.int64(prov["seed"])
    if model.noise_sigma:
        arrays["noise_sigma"] = np.float64(model.noise_sigma)
    if model.mix != 1:
        arrays["mix"] = np.int64(model.mix)
    path = Path(path)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def receptive_margin(model: PafuModel) -> int:
    """Pixels (at the model's input resolution) that influence one output quad/pixel."""
    sel = sum((w.shape[2] - 1) // 2 for w in model.selector_weights)
    return max(sel, (model.bank.shape[3] - 1) // 2)

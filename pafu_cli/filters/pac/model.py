"""The ``pac`` family's model: a learned joint bilateral upsampler (task
``guided_upsample``), its ``.npz`` keys and their validation.

Keys (after the envelope of :mod:`pafu_cli.models.format`; float32 unless said):

| key | shape | meaning |
|---|---|---|
| ``task`` | str | ``guided_upsample`` |
| ``scales`` | (n,) int64 | the upscale factors the model holds spatial weights for |
| ``range_scale`` | (3,) | guide (RGB in [0, 1]) to range features |
| ``guide_w1``, ``guide_b1`` | (hidden, 3, 3, 3), (hidden,) | guide branch, 3x3, ReLU |
| ``guide_w2``, ``guide_b2`` | (feat, hidden, 1, 1), (feat,) | guide branch, 1x1 |
| ``lr_w{i}``, ``lr_b{i}`` | (width, cin, 3, 3), (width,) | low-res branch, i = 0, 1, 2, ReLU |
| ``head_w``, ``head_b`` | (3 + feat + 2 [+ 2], width, 1, 1), (rows,) | features, value, confidence[, slope] |
| ``spatial_x{s}`` | (s, 5) | spatial weights per output phase and sample offset -2..2 (>= 0) |
| ``name``, ``description``, ``provenance_*`` | str | as for ``pafu`` models |

The computation is the docstring of :mod:`pafu_cli.training.pac.guided`; the engine
is :mod:`pafu_cli.filters.pac.engine`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from pafu_cli.filters.pafu.model import fail, provenance_arrays, read_floats, read_provenance, read_str

FAMILY = "pac"


@dataclasses.dataclass(frozen=True)
class PacTask:
    """What the ``guided_upsample`` task fixes. ``scaled`` False: a model holds several
    scales and the engine picks one for the ratio asked for."""

    scaled: bool = False


TASKS = {"guided_upsample": PacTask()}


@dataclasses.dataclass(frozen=True)
class PacModel:
    """A validated learned guided upsampler, float32 arrays."""

    family: ClassVar[str] = FAMILY

    task: str
    scales: tuple
    range_scale: np.ndarray
    guide_w1: np.ndarray
    guide_b1: np.ndarray
    guide_w2: np.ndarray
    guide_b2: np.ndarray
    lr_weights: tuple
    lr_biases: tuple
    head_w: np.ndarray
    head_b: np.ndarray
    spatial: dict  # scale -> (s, 5)
    name: str = ""
    description: str = ""
    provenance: dict = dataclasses.field(default_factory=dict)
    path: str = ""

    @property
    def feat(self) -> int:
        return self.guide_w2.shape[0]

    @property
    def slopes(self) -> bool:
        """Whether each sample carries a slope (the head's last two outputs)."""
        return self.head_w.shape[0] == 3 + self.feat + 4

    @property
    def scale(self) -> int:
        return max(self.scales)

    @property
    def quality(self) -> dict:
        try:
            return json.loads(self.provenance.get("quality", "{}") or "{}")
        except json.JSONDecodeError:
            return {}


def _shape(path, key, a, want):
    if a.shape != tuple(want):
        fail(path, f"key '{key}' has shape {a.shape}, expected {tuple(want)}")


def parse(f, path) -> PacModel:
    """Validate the ``pac`` keys of an open archive and build the model."""
    keys = set(f.files)
    need = [
        "task",
        "scales",
        "range_scale",
        "guide_w1",
        "guide_b1",
        "guide_w2",
        "guide_b2",
        "head_w",
        "head_b",
    ]
    missing = [k for k in need if k not in keys]
    if missing:
        fail(path, f"missing key(s) {', '.join(missing)}; is this a pac model?")
    task = read_str(f, "task", path)
    if task not in TASKS:
        fail(path, f"task '{task}' is invalid for a pac model, expected {', '.join(TASKS)}")
    scales = f["scales"]
    if scales.dtype.kind not in "iu" or scales.ndim != 1 or scales.size == 0 or (scales < 2).any():
        fail(path, "key 'scales' must be a 1-D array of integers >= 2")
    scales = tuple(int(s) for s in scales)
    rs = read_floats(f, "range_scale", path, 1)
    _shape(path, "range_scale", rs, (3,))
    w1 = read_floats(f, "guide_w1", path, 4)
    hidden = w1.shape[0]
    _shape(path, "guide_w1", w1, (hidden, 3, 3, 3))
    b1 = read_floats(f, "guide_b1", path, 1)
    _shape(path, "guide_b1", b1, (hidden,))
    w2 = read_floats(f, "guide_w2", path, 4)
    feat = w2.shape[0]
    _shape(path, "guide_w2", w2, (feat, hidden, 1, 1))
    b2 = read_floats(f, "guide_b2", path, 1)
    _shape(path, "guide_b2", b2, (feat,))
    lw, lb = [], []
    prev = 5  # map, validity, guide mean (3)
    for i in range(3):
        for key in (f"lr_w{i}", f"lr_b{i}"):
            if key not in keys:
                fail(path, f"missing key {key}")
        w = read_floats(f, f"lr_w{i}", path, 4)
        _shape(path, f"lr_w{i}", w, (w.shape[0], prev, 3, 3))
        b = read_floats(f, f"lr_b{i}", path, 1)
        _shape(path, f"lr_b{i}", b, (w.shape[0],))
        prev = w.shape[0]
        lw.append(w)
        lb.append(b)
    hw = read_floats(f, "head_w", path, 4)
    rows = hw.shape[0] if hw.shape[0] in (3 + feat + 2, 3 + feat + 4) else 3 + feat + 2
    _shape(path, "head_w", hw, (rows, prev, 1, 1))
    hb = read_floats(f, "head_b", path, 1)
    _shape(path, "head_b", hb, (rows,))
    spatial = {}
    for s in scales:
        key = f"spatial_x{s}"
        if key not in keys:
            fail(path, f"missing key {key} (scales {scales})")
        a = read_floats(f, key, path, 2)
        _shape(path, key, a, (s, 5))
        if (a < 0).any():
            fail(path, f"key '{key}' holds negative weights")
        spatial[s] = a
    prov = read_provenance(f, path)
    return PacModel(
        task=task,
        scales=scales,
        range_scale=rs,
        guide_w1=w1,
        guide_b1=b1,
        guide_w2=w2,
        guide_b2=b2,
        lr_weights=tuple(lw),
        lr_biases=tuple(lb),
        head_w=hw,
        head_b=hb,
        spatial=spatial,
        name=read_str(f, "name", path) if "name" in keys else Path(path).stem,
        description=read_str(f, "description", path) if "description" in keys else "",
        provenance=prov,
        path=str(path),
    )


def to_arrays(model: PacModel) -> dict:
    """The ``pac`` keys of ``model`` (the envelope is added by the writer)."""
    arrays = {
        "task": np.array(model.task),
        "scales": np.asarray(model.scales, np.int64),
        "range_scale": np.asarray(model.range_scale, np.float32),
        "guide_w1": np.asarray(model.guide_w1, np.float32),
        "guide_b1": np.asarray(model.guide_b1, np.float32),
        "guide_w2": np.asarray(model.guide_w2, np.float32),
        "guide_b2": np.asarray(model.guide_b2, np.float32),
        "head_w": np.asarray(model.head_w, np.float32),
        "head_b": np.asarray(model.head_b, np.float32),
        "name": np.array(model.name),
        "description": np.array(model.description),
    }
    for i, (w, b) in enumerate(zip(model.lr_weights, model.lr_biases)):
        arrays[f"lr_w{i}"] = np.asarray(w, np.float32)
        arrays[f"lr_b{i}"] = np.asarray(b, np.float32)
    for s, a in model.spatial.items():
        arrays[f"spatial_x{s}"] = np.asarray(a, np.float32)
    arrays.update(provenance_arrays(model.provenance))
    return arrays

"""Make the golden-test data in ``tests/data/``: synthetic inputs, and every shipped
model's output on them (see ``tests/data/README.md`` and ``tests/test_shipped_models.py``).

    python tools/make_goldens.py            # outputs again, from the committed inputs
    python tools/make_goldens.py --inputs   # inputs drawn again too (seeded), then outputs

Inputs (``golden_inputs.npz``) are drawn here from a seeded generator, or drawn
analytically (the guided-upsampling scene): nothing is taken from any data set.
Outputs (``goldens.npz`` and ``goldens.json``) come from the public API
(``pafu_cli.demosaick``, ``pafu_cli.upscale``, ``pafu_cli.guided_upsample``) and the
models in ``pafu_cli.models.models_dir()``; regenerate them only on purpose, after a
change of a shipped model or of the engine's numbers, and say so in the commit.

Before it writes, the script checks that no output sits on a knife edge: each case
is run again on its input plus noise of 1e-6 (far more than the last-bit changes a
different CPU or compiler could bring), and must give the same kernel selection
and outputs within half a quantisation level. A seed that fails is
replaced by the next one (``--inputs`` only). Guided cases (``pac`` models) have no
kernel selection: only their outputs are probed (the map nudged, the guide kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
INPUTS = DATA / "golden_inputs.npz"
OUTPUTS = DATA / "goldens.npz"
MANIFEST = DATA / "goldens.json"

SEED = 20261121
PICTURE_SIZE = 32  # demosaick input (mosaic of a 32 x 32 RGB picture)
SMALL_SIZE = 16  # upscale input
SIGMAS = (2, 5, 10)  # noisy RGGB mosaics, sigma in 0..255 units
PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
LEVELS = 65535  # outputs are stored as uint16 levels between lo and hi
PROBE_NOISE = 1e-6
PROBE_LEVELS = 0.5
GUIDED_SIZE = (12, 16)  # the guided-upsampling low-res map (rows, columns)
GUIDED_SCALES = (4, 8)  # its guides, (12 s, 16 s) uint8 RGB: a pac model's cases at these of its scales

SATURATED = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 0]], np.float64
)


# --- inputs ------------------------------------------------------------------------------------


def draw_picture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size uint8 RGB test picture: colour gradients, hard-edged saturated
    rectangles, an antialiased disc, an oblique edge, fine stripes near Nyquist,
    a noise texture, thin lines, a clipped highlight and a dark patch; all placed by
    ``rng``."""
    n = size
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5
    u, v = x / n, y / n
    a = rng.uniform(0, 2 * np.pi)
    img = np.stack(
        [u, 1 - v, 0.5 + 0.45 * np.sin(2 * np.pi * (np.cos(a) * u + np.sin(a) * v))], axis=2
    )  # gradients

    def box(lo, hi):
        y0, x0 = rng.integers(0, n - lo, 2)
        hh, ww = rng.integers(lo, hi + 1, 2)
        return (slice(y0, min(n, y0 + hh)), slice(x0, min(n, x0 + ww)))

    def layer(kind):
        if kind == "rectangles":
            for _ in range(3):
                img[box(n // 8, n // 3)] = SATURATED[rng.integers(len(SATURATED))]
        elif kind == "disc":
            cy, cx = rng.uniform(0.25 * n, 0.75 * n, 2)
            r = rng.uniform(0.1 * n, 0.25 * n)
            cover = np.clip(r - np.hypot(y - cy, x - cx) + 0.5, 0, 1)[..., None]
            img[:] = img * (1 - cover) + cover * SATURATED[rng.integers(6)]
        elif kind == "edge":
            t = rng.uniform(0, np.pi)
            d = np.cos(t) * (x - n / 2) + np.sin(t) * (y - n / 2) - rng.uniform(-n / 4, n / 4)
            cover = np.clip(d + 0.5, 0, 1)[..., None]
            img[:] = img * (1 - 0.7 * cover) + 0.7 * cover * rng.uniform(0, 1, 3)  # a tinted half
        elif kind == "stripes":
            s = box(n // 4, n // 2)
            t = rng.uniform(0, np.pi)
            period = rng.uniform(2.1, 3.5)
            wave = 0.5 + 0.5 * np.cos(2 * np.pi * (np.cos(t) * x[s] + np.sin(t) * y[s]) / period)
            c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
            img[s] = c0 + wave[..., None] * (c1 - c0)
        elif kind == "texture":
            s = box(n // 4, n // 2)
            img[s] = np.clip(img[s] + rng.normal(0, 0.15, img[s].shape), 0, 1)
        elif kind == "lines":
            for _ in range(2):
                c = SATURATED[rng.integers(len(SATURATED))]
                if rng.integers(2):
                    img[rng.integers(n), :] = c
                else:
                    img[:, rng.integers(n)] = c
        elif kind == "highlight":
            img[box(n // 8, n // 4)] = 1.2  # clipped to white below
        elif kind == "shadow":
            img[box(n // 8, n // 4)] = rng.uniform(0, 0.08, 3)

    layer("edge")
    for kind in rng.permutation(["rectangles", "disc", "stripes", "texture", "lines", "highlight", "shadow"]):
        layer(str(kind))
    return np.floor(np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _scene(u: np.ndarray, v: np.ndarray) -> tuple:
    """(depth, RGB) of the guided-upsampling scene at points (u, v), in low-res pixel
    units (the map covers [0, 16) x [0, 12)): a background plane (a ramp in depth,
    a colour gradient, and a painted stripe that is no depth edge); a nearer object
    whose left edge is oblique (a depth step, blue); a small disc (red) a little
    nearer than the plane, about three samples across."""
    depth = 2.0 + 0.08 * u + 0.04 * v
    rgb = np.stack([0.55 + 0.2 * np.sin(0.7 * u), 0.45 + 0.25 * v / 12, 0.3 + 0.1 * np.cos(0.5 * v)], axis=-1)
    stripe = (v > 8.0) & (v < 8.7) & (u < 8.0)
    rgb[stripe] = (0.9, 0.85, 0.2)
    near = (u > 9.3 + 0.3 * (v - 6.0)) & (v > 2.4) & (v < 9.6)
    depth = np.where(near, 0.8 + 0.02 * v, depth)
    rgb[near] = np.stack([np.full(near.sum(), 0.15), 0.25 + 0.02 * v[near], 0.8 - 0.01 * u[near]], axis=-1)
    disc = np.hypot(u - 4.2, v - 3.5) < 1.7
    depth = np.where(disc, 1.4, depth)
    rgb[disc] = (0.85, 0.2, 0.15)
    return depth, rgb


def guided_scene() -> dict:
    """The guided-upsampling inputs (no random numbers): ``guided_map``, the scene's
    depth sampled at the centres of a 12 x 16 grid (float32, one sample NaN: a hole),
    and ``guided_guide_x{s}``, its colours at (12 s, 16 s), antialiased (4 x 4
    points per pixel), uint8."""
    h, w = GUIDED_SIZE
    v, u = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    depth, _ = _scene(u, v)
    depth[5, 6] = np.nan
    arrays = {"guided_map": depth.astype(np.float32)}
    for s in GUIDED_SCALES:
        n = 4 * s  # sub-samples per low-res pixel and axis
        v, u = (np.mgrid[0 : h * n, 0 : w * n].astype(np.float64) + 0.5) / n
        _, rgb = _scene(u, v)
        rgb = rgb.reshape(h * s, 4, w * s, 4, 3).mean(axis=(1, 3))
        arrays[f"guided_guide_x{s}"] = np.floor(np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return arrays


def make_inputs(seed: int) -> dict:
    """The input arrays: ``picture`` (demosaick), ``small`` (upscale),
    ``noisy_sigma{s}``: the picture's RGGB mosaic plus N(0, (s/255)^2), clipped,
    stored as uint16 (value * 65535) so the tests need no random generator, and the
    guided scene (:func:`guided_scene`, drawn without the generator)."""
    from pafu_cli.cfa import mosaic

    rng = np.random.default_rng(seed)
    arrays = {"picture": draw_picture(PICTURE_SIZE, rng), "small": draw_picture(SMALL_SIZE, rng)}
    clean = mosaic(arrays["picture"].astype(np.float64) / 255, "RGGB")
    for s in SIGMAS:
        noisy = np.clip(clean + rng.normal(0, s / 255, clean.shape), 0, 1)
        arrays[f"noisy_sigma{s}"] = np.floor(noisy * 65535 + 0.5).astype(np.uint16)
    arrays.update(guided_scene())
    arrays["seed"] = np.array(seed, np.int64)
    return arrays


# --- cases -------------------------------------------------------------------------------------


def input_array(inputs, case):
    """The float32 array a case feeds to the API, or for a guided case the pair
    (float32 map, uint8 guide) (tests/test_shipped_models.py calls this too)."""
    from pafu_cli.cfa import mosaic

    src = case["input"]
    if src == "guided":
        return inputs["guided_map"].astype(np.float32), inputs[f"guided_guide_x{case['scale']}"]
    if src == "picture":
        return mosaic(inputs["picture"].astype(np.float32) / np.float32(255), case["pattern"])
    if src == "small":
        return inputs["small"].astype(np.float32) / np.float32(255)
    return inputs[src].astype(np.float32) / np.float32(65535)


def run_case(case, x):
    """(output float32, selection int32 or None) of one case through the public API;
    guided cases have no selection and give the model by its path."""
    import pafu_cli
    from pafu_cli.models import models_dir

    if case["task"] == "guided_upsample":
        lowres, guide = x
        path = str(models_dir() / f"{case['model']}.npz")
        return pafu_cli.guided_upsample(lowres, guide, method=path), None
    if case["task"] == "demosaick":
        return pafu_cli.demosaick(x, case["pattern"], model=case["model"], return_selection=True)
    return pafu_cli.upscale(x, case["scale"], model=case["model"], return_selection=True)


def make_cases() -> list:
    """Every shipped model: the default demosaick model in the 4 patterns, the
    other demosaick models on RGGB, the denoising ones also on a noisy RGGB
    mosaic at their own sigma, the upscale models on ``small``, the guided
    upsamplers (``pac`` family) on the guided scene at each of their scales in
    GUIDED_SCALES (their other spatial tables are checked by the fingerprint)."""
    from pafu_cli import load_model
    from pafu_cli.models import list_models, models_dir

    cases = []
    for name in list_models():
        m = load_model(models_dir() / f"{name}.npz")
        if m.task == "guided_upsample":
            scales = [s for s in GUIDED_SCALES if s in m.scales]
            if not scales:
                sys.exit(f"{name}: none of its scales {m.scales} has a guide; add one to GUIDED_SCALES")
            for s in scales:
                cases.append({"model": name, "task": "guided_upsample", "scale": s, "input": "guided"})
        elif m.task == "demosaick":
            patterns = PATTERNS if name == "demosaick" else ("RGGB",)
            for p in patterns:
                cases.append({"model": name, "task": "demosaick", "pattern": p, "input": "picture"})
            sigma = round(m.noise_sigma * 255)
            if sigma:
                if sigma not in SIGMAS:
                    sys.exit(f"{name}: noise sigma {sigma} has no noisy input; add it to SIGMAS")
                src = f"noisy_sigma{sigma}"
                cases.append({"model": name, "task": "demosaick", "pattern": "RGGB", "input": src})
        else:
            cases.append({"model": name, "task": "upscale", "scale": m.scale, "input": "small"})
    for c in cases:
        extra = c.get("pattern", f"x{c.get('scale')}")
        c["key"] = f"{c['model']}__{c['input']}__{extra}"
    return cases


def sha256(a: np.ndarray, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=dtype).tobytes()).hexdigest()


# The lists and dicts of hashes in a fingerprint, and what one entry is (the test
# names the entries that changed); every other key is compared as a whole.
FINGERPRINT_PARTS = {
    "bank": "kernel",
    "selector": "selector layer",
    "guide": "guide-branch layer",
    "lowres": "low-res-branch layer",
    "spatial": "spatial table",
}


def _h(*arrays) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(a, "<f4").tobytes() for a in arrays)).hexdigest()[:16]


def fingerprint(m) -> dict:
    """What a model computes with, hashed (tests/test_shipped_models.py checks it,
    and names the parts that changed). ``pafu`` family: each kernel of the bank,
    each selector layer, the selector's input normalisation; ``pac`` family: the
    range scale, each layer (weights and bias) of the guide branch and of the
    low-res branch, the head, and the spatial table of each scale."""
    if m.family == "pac":
        return {
            "family": "pac",
            "task": m.task,
            "scales": [int(s) for s in m.scales],
            "slopes": bool(m.slopes),
            "range_scale": _h(m.range_scale),
            "guide": [_h(m.guide_w1, m.guide_b1), _h(m.guide_w2, m.guide_b2)],
            "lowres": [_h(w, b) for w, b in zip(m.lr_weights, m.lr_biases)],
            "head": _h(m.head_w, m.head_b),
            "spatial": {f"x{s}": _h(m.spatial[s]) for s in m.scales},
        }
    return {
        "family": m.family,
        "task": m.task,
        "scale": int(m.scale),
        "mix": int(m.mix),
        "noise_sigma": float(m.noise_sigma),
        "kernel_sizes": [int(k) for k in m.kernel_sizes],
        "bank": [_h(k) for k in m.bank],
        "selector": [_h(w, b) for w, b in zip(m.selector_weights, m.selector_biases)],
        "selector_input": _h(m.selector_input_mean, m.selector_input_scale),
    }


def quantise(out: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.floor((out.astype(np.float64) - lo) / ((hi - lo) / LEVELS) + 0.5)


def _nudge(x, rng):
    """The input moved by up to PROBE_NOISE (a guided case: the map, not the guide)."""
    if isinstance(x, tuple):
        return (_nudge(x[0], rng),) + x[1:]
    return (x + rng.uniform(-PROBE_NOISE, PROBE_NOISE, x.shape)).astype(np.float32)


def probe(case, x, out, sel, lo, hi, rng) -> list:
    """Problems found when the input is nudged by +-PROBE_NOISE (empty: robust)."""
    problems = []
    for _ in range(2):
        out2, sel2 = run_case(case, _nudge(x, rng))
        levels = np.abs(out2.astype(np.float64) - out) / ((hi - lo) / LEVELS)
        if sel is not None and not np.array_equal(sel, sel2):
            problems.append(f"selection changes at {int((sel != sel2).sum())} places")
        if levels.max() > PROBE_LEVELS:
            problems.append(f"output moves by {levels.max():.2f} levels")
    return problems


def make_outputs(inputs) -> tuple:
    """(arrays for goldens.npz, manifest, knife-edge problems)."""
    rng = np.random.default_rng(0)
    arrays, manifest, problems = {}, [], []
    for case in make_cases():
        x = input_array(inputs, case)
        out, sel = run_case(case, x)
        if not np.isfinite(out).all():
            sys.exit(f"{case['key']}: the output holds NaN or Inf; the goldens need finite outputs")
        lo = float(np.floor(out.min() * 16) / 16)
        hi = float(np.ceil(out.max() * 16) / 16)
        hi = max(hi, lo + 1 / 16)
        arrays[case["key"]] = quantise(out, lo, hi).astype(np.uint16)
        problems += [f"{case['key']}: {p}" for p in probe(case, x, out, sel, lo, hi, rng)]
        entry = dict(case, shape=list(out.shape), lo=lo, hi=hi, sha256_float32=sha256(out, "<f4"))
        used = ""
        if sel is not None:  # a kernel selection (pafu family)
            arrays[case["key"] + ".sel"] = sel.astype(np.uint8)
            entry.update(sha256_selection=sha256(sel, "<i4"), kernels_used=len(np.unique(sel)))
            used = f"  kernels used {entry['kernels_used']}"
        manifest.append(entry)
        print(f"{case['key']:50s} range [{lo:+.4f}, {hi:+.4f}]{used}")
    return arrays, manifest, problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", action="store_true", help="draw the inputs again (seeded) as well")
    ap.add_argument("--seed", type=int, default=SEED, help="first seed tried with --inputs")
    args = ap.parse_args(argv)

    DATA.mkdir(parents=True, exist_ok=True)
    seeds = range(args.seed, args.seed + 20) if args.inputs else [None]
    for seed in seeds:
        if seed is None:
            with np.load(INPUTS, allow_pickle=False) as f:
                inputs = {k: f[k] for k in f.files}
        else:
            inputs = make_inputs(seed)
        arrays, manifest, problems = make_outputs(inputs)
        if not problems:
            break
        print("knife edge:\n  " + "\n  ".join(problems))
        if seed is None:
            print("the committed inputs give knife-edge outputs; draw new ones with --inputs")
            return 1
    else:
        print("no seed gave robust outputs")
        return 1
    if args.inputs:
        np.savez_compressed(INPUTS, **inputs)
        print(f"seed {int(inputs['seed'])}: {INPUTS.relative_to(REPO)} written")
    np.savez_compressed(OUTPUTS, **arrays)
    from pafu_cli import load_model
    from pafu_cli.models import list_models, models_dir

    doc = {
        "about": "Golden outputs of the shipped models; made by tools/make_goldens.py, see README.md here.",
        "levels": LEVELS,
        "models": {n: fingerprint(load_model(models_dir() / f"{n}.npz")) for n in list_models()},
        "cases": manifest,
    }
    MANIFEST.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(manifest)} cases: {OUTPUTS.relative_to(REPO)}, {MANIFEST.relative_to(REPO)} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())

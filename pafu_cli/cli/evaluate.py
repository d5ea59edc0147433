"""``pafu evaluate``: reproduce the quality tables of README."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from pafu_cli.errors import PafuError
from pafu_cli.filters.pafu.model import TASKS


def _record(model_name: str, key: str, value: float, digits: int = 2) -> None:
    """Store a measured figure, rounded to ``digits`` decimals, in a shipped model's
    provenance (``test`` section); any family."""
    from pafu_cli.models.format import load_model, save_model
    from pafu_cli.models.registry import models_dir

    path = models_dir() / f"{model_name}.npz"
    m = load_model(path)
    q = m.quality
    q.setdefault("test", {})[key] = round(float(value), digits)
    prov = dict(m.provenance, quality=json.dumps(q))
    save_model(m.__class__(**{**m.__dict__, "provenance": prov}), path)


def _upscale_table(
    root: Path, sets, model, record: bool, scales, ensemble: bool, baseline: bool, quality: str
):
    """Columns and rows (label -> means) of the super-resolution table."""
    from pafu_cli.evaluation import protocols as ev
    from pafu_cli.models.registry import quality_model

    sets = sets or ("Set5", "Set14")
    scales = scales or (2, 3, 4)
    cols = [f"{s} x{k}" for s in sets for k in scales]
    rows = {}
    per_scale = {k: model or quality_model("upscale", k, quality) for k in scales}
    label = (model or ("pafu (default)" if quality == "standard" else f"--quality {quality}")) + (
        " + x8 ensemble" if ensemble else ""
    )
    rows[label] = [
        np.mean(list(ev.sr_scores(root / s, k, per_scale[k], ensemble).values()))
        for s in sets
        for k in scales
    ]
    if baseline:
        rows["bicubic (MATLAB)"] = [
            np.mean(list(ev.bicubic_sr_scores(root / s, k).values())) for s in sets for k in scales
        ]
    if record:  # into the shipped default of each scale, or the shipped model given
        for (s, k), v in zip([(s, k) for s in sets for k in scales], rows[label]):
            _record(per_scale[k], f"{s}{' ens' if ensemble else ''}", v)
    return cols, rows


def _demosaick_table(root: Path, sets, model, record: bool, sigmas, denoise, colours, quality):
    """Columns and rows (label -> means) of the demosaicking table; the models
    picked per image are reported on stderr."""
    from pafu_cli.evaluation import protocols as ev
    from pafu_cli.models.registry import DEFAULT_MODELS, quality_model

    if quality != "standard":
        quality_model("demosaick", 1, quality)  # a missing level: one line before any work

    sets = sets or ("Kodak24", "McMaster")
    sigmas = sigmas or (0.0,)
    cols = [
        f"{s} {'b10' if b == 0 else 'b0'}" + (f" sigma {g:g}" if g else "")
        for g in sigmas
        for s in sets
        for b in (0, 1)
    ]
    vals = []
    picks = {}
    for g in sigmas:
        for s in sets:
            scores = ev.demosaick_scores(
                root / s, model, g, denoise=denoise, picks=picks, colours=colours, quality=quality
            )
            sc = np.array(list(scores.values()))
            vals += [sc[:, 0].mean(), sc[:, 1].mean()]
            if record and not (denoise or colours or quality != "standard"):
                name = model or DEFAULT_MODELS[("demosaick", 1)]
                _record(name, f"{s} b10" + (f" sigma{g:g}" if g else ""), sc[:, 0].mean())
    label = (
        " ".join(
            ([f"--denoise {denoise}"] if denoise else [])
            + ([f"--colours {colours}"] if colours else [])
            + ([f"--quality {quality}"] if quality != "standard" else [])
        )
        or model
        or "pafu (default)"
    )
    if denoise or colours or quality != "standard":
        click.echo(
            "models picked: "
            + "; ".join(
                f"{k}: " + ", ".join(f"{n} x{c}" for n, c in sorted(v.items())) for k, v in picks.items()
            ),
            err=True,
        )
    return cols, {label: vals}


# Protocols whose means ``--record`` stores, as "<set> x<s>" (RMSE, 3 decimals); the
# others would give keys that clash (NYU3 under "decimation") or that no test reads.
GUIDED_RECORDED = ("bicubic", "park")


def _shipped_guided_models(methods) -> None:
    """Refuse ``--record`` unless every method is a shipped guided_upsample model."""
    from pafu_cli.models.format import load_model
    from pafu_cli.models.registry import list_models, models_dir

    shipped = [n for n in list_models() if load_model(models_dir() / f"{n}.npz").task == "guided_upsample"]
    bad = [m for m in methods if m not in shipped]
    if bad or not methods:
        raise PafuError(
            f"--record stores figures in shipped guided_upsample models only; give each with --method "
            f"(shipped: {', '.join(shipped) or 'none'}; not: {', '.join(bad) or 'no --method'})"
        )


def _guided_table(root: Path, sets, model, record: bool, scales, protocol, methods, json_path):
    """Columns and rows (label -> means) of a guided-upsampling table, one protocol.
    With ``record``, each method (a shipped model) gets its means as "<set> x<s>"."""
    from pafu_cli.evaluation import depth as ev
    from pafu_cli.guided import METHODS, guided_upsample

    if model is not None:
        raise PafuError("guided-upsample takes --method (jbu, bicubic, bilinear or a model), not --model")
    if record:
        if protocol not in GUIDED_RECORDED:
            raise PafuError(
                f"--record stores the {' and '.join(GUIDED_RECORDED)} protocols only, not {protocol}"
            )
        _shipped_guided_models(methods)
    methods = methods or METHODS
    sets = sets or ev.sets_for(protocol)
    scales = scales or ev.SCALES[protocol]
    try:
        results = {}
        for m in methods:

            def method(lowres, guide, out_shape, m=m):
                return guided_upsample(lowres, guide, out_shape, method=m)

            results[m] = ev.evaluate(method, root, protocol, sets, scales)
    except ValueError as e:
        raise PafuError(str(e)) from None
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    cols = [f"{n} x{k} ({results[methods[0]]['sets'][n]['unit']})" for n in sets for k in scales]
    rows = {}
    for m, r in results.items():
        rows[m] = [v for n in sets for v in r["sets"][n]["mean"]]
        if protocol == "park":
            rows[m].append(r["geomean"])
    if protocol == "park":
        cols.append("geo-mean of all")
    if record:
        for m, r in results.items():
            for n in sets:
                for k, v in zip(scales, r["sets"][n]["mean"]):
                    _record(m, f"{n} x{k}", v, digits=3)
    return cols, rows


# The tasks with a test protocol: task -> (its table, the options it takes).
_TABLES = {
    "upscale": (_upscale_table, ("scales", "ensemble", "baseline", "quality")),
    "demosaick": (_demosaick_table, ("sigmas", "denoise", "colours", "quality")),
    "guided-upsample": (_guided_table, ("scales", "protocol", "methods", "json_path")),
}


@click.command("evaluate", short_help="Measure PSNR tables with the standard protocols.")
@click.argument("task", type=click.Choice([t for t in TASKS if t in _TABLES] + ["guided-upsample"]))
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False),
    required=True,
    help="Folder holding the test sets (e.g. ../shared/data).",
)
@click.option(
    "--set", "sets", multiple=True, help="Test set folder names (default: Set5 Set14 / Kodak24 McMaster)."
)
@click.option(
    "--scale",
    "-s",
    "scales",
    multiple=True,
    type=click.IntRange(2, 16),
    help="Upscale factors (default 2 3 4; guided-upsample: the protocol's, 4 8 16).",
)
@click.option("--model", default=None, help="Model name or file (default: the shipped default).")
@click.option(
    "--sigma", "sigmas", multiple=True, type=float, help="Demosaick noise sigmas, 0..255 (default 0)."
)
@click.option("--ensemble", is_flag=True, help="x8 self-ensemble (upscale).")
@click.option(
    "--denoise",
    type=click.Choice(["on", "auto"]),
    default=None,
    help="Demosaick: pick the model per image from the noise estimate, as "
    "'pafu demosaick --denoise on|auto' does (instead of --model).",
)
@click.option(
    "--colours",
    type=click.Choice(["auto", "natural", "vivid"]),
    default=None,
    help="Demosaick: pick the model or its vivid twin per image from its colourfulness, as "
    "'pafu demosaick --colours auto' does (instead of --model; default: the "
    "default model alone).",
)
@click.option(
    "--quality",
    type=click.Choice(["fast", "standard", "high"]),
    default="standard",
    show_default=True,
    help="The shipped models of this quality, as 'pafu upscale|demosaick --quality' picks "
    "them (demosaick: standard or high; instead of --model).",
)
@click.option("--baseline", is_flag=True, help="Upscale: also MATLAB bicubic.")
@click.option(
    "--protocol",
    type=click.Choice(["bicubic", "decimation", "park", "sintel"]),
    default="bicubic",
    show_default=True,
    help="Guided-upsample: DCTNet bicubic (Middlebury30, Lu6, NYU3), pacnet decimation (NYU3), "
    "Park-Barron noisy, pacnet Sintel flow (see docs/guided.md).",
)
@click.option(
    "--method",
    "-m",
    "methods",
    multiple=True,
    metavar="jbu|bicubic|bilinear|MODEL",
    help="Guided-upsample methods or models (repeatable; default jbu, bicubic, bilinear).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Guided-upsample: all scores to FILE."
)
@click.option(
    "--record",
    is_flag=True,
    help="Write the means into the provenance of the shipped model evaluated (--model, a shipped "
    "name; default: the shipped default; guided-upsample: each --method's, every one a shipped "
    "model; protocols bicubic and park).",
)
def evaluate_cmd(task, data_dir, sets, scales, model, record, **given):
    """Print a markdown table of mean PSNR (guided-upsample: RMSE or EPE) per test set.

    \b
    Examples:
      $ pafu evaluate upscale --data ../shared/data --baseline
      $ pafu evaluate demosaick --data ../shared/data --sigma 0 --sigma 5 --sigma 10
      $ pafu evaluate demosaick --data ../shared/data --denoise on --sigma 0 --sigma 5
      $ pafu evaluate demosaick --data ../shared/data --denoise auto --colours auto
      $ pafu evaluate upscale --data ../shared/data --quality high
      $ pafu evaluate guided-upsample --data ../shared/data/depth --protocol bicubic
      $ pafu evaluate guided-upsample --data ../shared/data/depth -m guided_upsample --record
    """
    if task == "upscale" and any(k > 4 for k in scales):
        raise click.BadParameter("upscale factors are 2, 3 or 4", param_hint="--scale")
    if task != "guided-upsample" and given.get("methods"):
        # -m is guided-upsample's --method; for these tasks it can only mean --model
        if model is not None or len(given["methods"]) > 1:
            raise click.UsageError(f"{task}: give one model, with --model (or -m)")
        model = given["methods"][0]
    if given["quality"] != "standard" and (model is not None or task == "guided-upsample"):
        raise click.UsageError("--quality picks shipped upscale or demosaick models: give it without --model")
    if task == "demosaick" and given["quality"] == "fast":
        raise click.BadParameter("demosaick has no fast models (standard or high)", param_hint="--quality")
    table, own = _TABLES[task]
    given["scales"] = scales
    try:
        cols, rows = table(Path(data_dir), sets, model, record, *(given[k] for k in own))
    except PafuError as e:
        raise click.ClickException(str(e)) from None
    click.echo("| method | " + " | ".join(cols) + " |")
    click.echo("|---|" + "---|" * len(cols))
    for name, v in rows.items():
        digits = 3 if task == "guided-upsample" else 2
        click.echo(f"| {name} | " + " | ".join(f"{x:.{digits}f}" for x in v) + " |")

"""``pafu models``."""

from __future__ import annotations

import re

import click

_GUIDED_KEY = re.compile(r"(?P<set>\S+) x(?P<scale>\d+)")


def guided_quality(test: dict) -> str:
    """A guided upsampler's recorded test RMSE (``pafu evaluate guided-upsample
    --record``: keys "<set> x<s>"), one group per set with its unit:
    ``Middlebury30 x4/x8 2.105/3.355 levels, NYU3 x4 3.791 cm``."""
    from pafu_cli.evaluation.depth import unit

    if not test:
        return "not measured"
    groups, other = {}, []
    for key, value in test.items():
        g = _GUIDED_KEY.fullmatch(key)
        try:
            u = unit(g["set"]) if g else None
        except ValueError:
            u = None
        if u is None:
            other.append(f"{key} {value:.3f}")
            continue
        groups.setdefault((g["set"], u), []).append((int(g["scale"]), value))
    parts = []
    for (name, u), figures in groups.items():
        figures.sort()
        scales = "/".join(f"x{s}" for s, _ in figures)
        parts.append(f"{name} {scales} " + "/".join(f"{v:.3f}" for _, v in figures) + f" {u}")
    return ", ".join(parts + other)


@click.command("models", short_help="List the shipped models.")
def models_cmd():
    """List the shipped models with task, scale, kernels and measured quality.

    \b
    Example:
      $ pafu models
    """
    from pafu_cli.errors import ModelError
    from pafu_cli.filters.pafu.model import load_model
    from pafu_cli.models.registry import list_models, models_dir

    for name in list_models():
        path = models_dir() / f"{name}.npz"
        try:
            m = load_model(path)
        except ModelError as e:
            click.echo(f"{name}: unusable ({e})")
            continue
        q = m.quality.get("test", {})
        if m.family == "pac":
            scales = "/".join(f"x{s}" for s in m.scales)
            planes = ", a plane per sample" if m.slopes else ""
            click.echo(
                f"{name}: {m.task} {scales}, learned JBU with {m.feat} guide features{planes}; "
                f"RMSE {guided_quality(q)}"
            )
            continue
        sizes = "/".join(f"{k}x{k}" for k in sorted(set(m.kernel_sizes.tolist())))
        qtxt = ", ".join(f"{k} {v:.2f} dB" for k, v in q.items()) if q else "not measured"
        blend = ", two blended per pixel" if m.mix == 2 else ""
        if m.family == "pafunet":
            kf = m.feature_bank.shape[3]
            blend += f", also reading {m.feature_channels} hidden features ({kf}x{kf})"
        click.echo(
            f"{name}: {m.task} x{m.scale}, {m.n_kernels} kernels {sizes}{blend}, "
            f"{len(m.selector_weights)}-layer selector; {qtxt}"
        )

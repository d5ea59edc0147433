"""``pafu models``."""

from __future__ import annotations

import click


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
            qtxt = ", ".join(f"{k} {v:.2f}" for k, v in q.items()) if q else "not measured"
            scales = "/".join(f"x{s}" for s in m.scales)
            click.echo(f"{name}: {m.task} {scales}, learned JBU with {m.feat} guide features; RMSE {qtxt}")
            continue
        sizes = "/".join(f"{k}x{k}" for k in sorted(set(m.kernel_sizes.tolist())))
        qtxt = ", ".join(f"{k} {v:.2f} dB" for k, v in q.items()) if q else "not measured"
        blend = ", two blended per pixel" if m.mix == 2 else ""
        click.echo(
            f"{name}: {m.task} x{m.scale}, {m.n_kernels} kernels {sizes}{blend}, "
            f"{len(m.selector_weights)}-layer selector; {qtxt}"
        )

"""``pafu train``: the training command (PyTorch is imported only when it runs)."""

from __future__ import annotations

import dataclasses
import logging
import sys

import click

from pafu_cli.errors import PafuError
from pafu_cli.filters.pafu.model import TASKS, one_of


def _factors(text: str) -> tuple:
    """``--shrink``: comma-separated factors in (0, 1]."""
    try:
        z = tuple(float(v) for v in text.split(","))
    except ValueError:
        z = ()
    if not z or any(not 0 < v <= 1 for v in z):
        raise click.BadParameter(
            f"{text!r}: give comma-separated factors in (0, 1], e.g. 1,0.7", param_hint="--shrink"
        )
    return z


@click.command("train", short_help="Train a PAFU model (needs the [train] extra).")
@click.option("--task", type=click.Choice([*TASKS, "guided_upsample"]), required=True)
@click.option(
    "--scale",
    "-s",
    type=click.IntRange(1, 4),
    default=2,
    show_default=True,
    help="Upscale factor (ignored for demosaick).",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of training images (repeatable).",
)
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False), help="Model file to write (.npz)."
)
@click.option("--iters", default=3000, show_default=True, help="Gradient steps.")
@click.option("--batch", default=16, show_default=True)
@click.option("--patch", default=0, help="Patch size (0: 96 px for demosaick, 32/24/20 LR px for x2/x3/x4).")
@click.option("--kernels", "n_kernels", default=16, show_default=True, help="Kernels in the bank.")
@click.option(
    "--kernel-sizes",
    default="",
    help="Odd sizes: one for every kernel (e.g. 7), or comma-separated, one per kernel (default: all 5).",
)
@click.option("--width", default=16, show_default=True, help="Selector width.")
@click.option("--depth", default=3, show_default=True, help="Selector layers (the last is 1x1).")
@click.option("--lr-bank", default=1e-3, show_default=True)
@click.option("--lr-selector", default=2e-3, show_default=True)
@click.option(
    "--lr-features",
    default=0.0,
    show_default=True,
    help="With --features: Adam's rate for the feature bank (0: --lr-bank's).",
)
@click.option(
    "--tau",
    nargs=2,
    type=float,
    default=(1.0, 0.1),
    show_default=True,
    help="Gumbel temperature: start and end (geometric schedule).",
)
@click.option("--decorrelation", default=1e-5, show_default=True, help="Weight of ||Wf Wf^T - I||^2.")
@click.option(
    "--alternate/--no-alternate",
    default=True,
    show_default=True,
    help="Update selector 1 step, bank 3 steps, in turn.",
)
@click.option(
    "--refit/--no-refit",
    default=True,
    show_default=True,
    help="Least-squares refit of the bank given the selector's choices at the end.",
)
@click.option(
    "--refit-batches",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Batches of training patches the least-squares refit (and each polish round's) sums over.",
)
@click.option(
    "--noise",
    nargs=2,
    type=float,
    default=(0.0, 0.0),
    show_default=True,
    help="Demosaick: max shot-noise gain a and max read-noise sigma (0..1 units).",
)
@click.option("--noise-p-clean", default=0.0, show_default=True, help="Share of noise-free patches.")
@click.option(
    "--noise-min",
    "noise_sigma_min",
    default=0.0,
    show_default=True,
    help="Demosaick: min read-noise sigma (0..1 units), for a noise-level specialist.",
)
@click.option(
    "--val-sigma",
    default=0.0,
    show_default=True,
    callback=lambda ctx, param, sigma: sigma / 255,
    help="Demosaick: mosaic noise sigma (0..255 units) of the validation that picks the bank; "
    "stored as the model's noise_sigma (the level --denoise picks it for).",
)
@click.option(
    "--val-saturation",
    default=1.0,
    show_default=True,
    help="Demosaick: validate on the held-out images with their saturation scaled by this "
    "(2 for a vivid model: McMaster-like colours).",
)
@click.option(
    "--val-regions",
    is_flag=True,
    help="Demosaick: validate on the held-out images recoloured per random region (colours that "
    "jump independently across borders, a McMaster-like proxy; see tools/calibrate/val_colour.py).",
)
@click.option(
    "--color-aug",
    default=0.0,
    show_default=True,
    help="Demosaick: share of patches with random channel permutation and saturation.",
)
@click.option(
    "--color-sat",
    default=2.0,
    show_default=True,
    help="Demosaick: largest saturation factor of --color-aug (log-uniform from 0.5).",
)
@click.option(
    "--color-invert",
    default=0.0,
    show_default=True,
    help="Demosaick: share of patches with one colour channel inverted (edges where one colour "
    "falls as another rises, as in McMaster-like pictures; costs quality on ordinary photos).",
)
@click.option(
    "--color-regions",
    default=0.0,
    show_default=True,
    help="Demosaick: share of patches recoloured per random region (each region its own RGB "
    "gains: colour edges whose channels jump independently; what --val-regions validates on).",
)
@click.option(
    "--shrink",
    "bayer_shrink",
    default="1",
    show_default=True,
    callback=lambda ctx, param, text: _factors(text),
    help="Demosaick: comma-separated scale factors; patches are also cut from the pictures shrunk "
    "by each (MATLAB bicubic), e.g. 1,0.7,0.5.",
)
@click.option(
    "--passthrough/--no-passthrough",
    default=False,
    show_default=True,
    help="Demosaick: keep the known sample of every pixel (learn only the missing colours).",
)
@click.option(
    "--selector-input",
    type=click.Choice(["packed", "full"]),
    default="packed",
    show_default=True,
    help="Demosaick: selector on the packed quads, or on the full-resolution mosaic (ablation; "
    "not exportable).",
)
@click.option(
    "--selector-pretrain",
    default=500,
    show_default=True,
    help="Initialisation: selector steps learning the k-means patch clusters.",
)
@click.option(
    "--init",
    "init",
    type=click.Choice(["kmeans", "random"]),
    default="kmeans",
    show_default=True,
    help="Bank/selector start: k-means input partition, or near-identical kernels (ablation).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    callback=lambda ctx, param, path: path or "",
    help="Warm start: begin from this exported model (same task, scale and selector; --kernels "
    "may be a multiple of its kernels, --kernel-sizes larger) instead of the k-means start; "
    "guided_upsample: its weights, widths and slopes. Its chain of commands is recorded in the "
    "new model's provenance.",
)
@click.option(
    "--balance",
    default=0.0,
    show_default=True,
    help="Weight of a load-balancing term (n x sum of share x soft share per kernel) against unused kernels.",
)
@click.option(
    "--revive",
    "revive_every",
    default=0,
    show_default=True,
    help="Every N steps of the first half, split busy kernels into unused ones (0: off).",
)
@click.option(
    "--polish",
    "polish_steps",
    default=0,
    show_default=True,
    help="After the refit: selector-only steps on the expected l2 loss for the fixed bank, "
    "then a refit, per round (0: off); a round is kept if it improves validation.",
)
@click.option("--polish-rounds", default=2, show_default=True, help="Rounds of --polish.")
@click.option(
    "--polish-revive",
    is_flag=True,
    help="Before each --polish round, split busy kernels into the unused ones (as --revive).",
)
@click.option(
    "--mix",
    default=1,
    show_default=True,
    type=click.Choice(["1", "2"]),
    callback=lambda ctx, param, mix: int(mix),
    help="Kernels blended per pixel at inference: 1 = the argmax kernel; 2 = the two with the "
    "largest logits, weighted by their softmax (the refit is then joint and --polish "
    "trains selector and bank on the blend's loss).",
)
@click.option(
    "--features",
    default=0,
    show_default=True,
    type=click.Choice(["0", "1", "3", "5"]),
    callback=lambda ctx, param, k: int(k),
    help="Grow the --init-from model into a non-linear one (pafunet family): each kernel also "
    "reads the selector's last hidden layer through a feature kernel of this size (0: off). "
    "--width may widen the selector (the new channels start unused).",
)
@click.option(
    "--val-interval",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Log the validation figure every N gradient steps (0: at the end only).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--minutes",
    default=0.0,
    show_default=True,
    help="Stop the gradient steps after this many minutes (0: after --iters steps).",
)
@click.option(
    "--slopes/--no-slopes",
    default=False,
    show_default=True,
    help="guided_upsample: each low-res sample carries a slope (a plane instead of a constant).",
)
@click.option(
    "--pool",
    default=240,
    show_default=True,
    type=click.IntRange(min=1),
    help="guided_upsample: synthetic RGB-D pairs made before training.",
)
@click.option(
    "--degradations",
    default="bicubic,noisy",
    show_default=True,
    help="guided_upsample: low-res inputs to train on, comma-separated: bicubic (P1 shrink), "
    "decimated (clean samples), noisy (a noisy sensor with holes).",
)
@click.option(
    "--widths",
    default="8,4,24",
    show_default=True,
    help="guided_upsample: channels of the guide branch's hidden layer, of its learned "
    "features and of the low-res branch, comma-separated.",
)
@click.option(
    "--lr",
    "guided_lr",
    type=click.FloatRange(min=0, min_open=True),
    default=2e-3,
    show_default=True,
    help="guided_upsample: Adam's learning rate at the start (cosine decay to 0); lower for --init-from.",
)
@click.option("--threads", default=0, help="Torch threads (0: default).")
@click.option(
    "--checkpoint", default="", help="Checkpoint file (default: OUT with .ckpt.pt); resumes if present."
)
def train_cmd(**options):
    """Train a PAFU model on folders of ordinary images and export it as .npz.

    \b
    Example (x2 super-resolution on T91 + BSD200):
      $ pafu train --task upscale -s 2 --data ../shared/data/T91 \\
            --data ../shared/data/BSD200 --out my_x2.npz --iters 3000
    """
    if options["task"] == "guided_upsample":
        return _train_guided(options)
    for name in GUIDED_ONLY:
        options.pop(name)
    try:
        from pafu_cli.training.pafu.loop import TrainConfig, train
    except ImportError as e:
        raise click.ClickException(f"training needs PyTorch: pip install 'pafu[train]' ({e})") from None
    n = options["n_kernels"]
    sizes = tuple(int(k) for k in options["kernel_sizes"].split(",")) if options["kernel_sizes"] else ()
    if len(sizes) == 1:
        sizes = sizes * n
    if sizes and len(sizes) != n:
        raise click.BadParameter(f"{len(sizes)} sizes given for {n} kernels", param_hint="--kernel-sizes")
    options["kernel_sizes"] = sizes
    spec = TASKS[options["task"]]
    if not spec.scaled:
        options["scale"] = spec.scales[0]
    elif options["scale"] not in spec.scales:
        raise click.BadParameter(f"{options['task']} needs {one_of(spec.scales)}", param_hint="--scale")
    cfg = TrainConfig(**_config_fields(options, TrainConfig))
    logging.getLogger("pafu.train").setLevel(logging.INFO)
    command = "pafu train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else ""
    try:
        summary = train(cfg, command=command)
    except (ValueError, PafuError) as e:  # ModelError, InputError: one line each
        raise click.ClickException(str(e)) from None
    if summary["out"]:
        click.echo(f"wrote {summary['out']}: validation {summary['val']:.3f} dB", err=True)
    else:
        click.echo(f"validation {summary['val']:.3f} dB (nothing exported)", err=True)


def _train_guided(options: dict) -> None:
    """``pafu train --task guided_upsample``: a learned JBU (PAC family) for x2, x4,
    x8 and x16 on synthetic RGB-D pairs made from the --data photographs."""
    from pathlib import Path

    try:
        import torch

        from pafu_cli.training.common import provenance, warm_start_record
        from pafu_cli.training.pac.guided import export, train
    except ImportError as e:
        raise click.ClickException(f"training needs PyTorch: pip install 'pafu[train]' ({e})") from None
    from pafu_cli.models.format import save_model

    if options["threads"]:
        torch.set_num_threads(options["threads"])
    out = Path(options["out"])
    try:
        hidden, feat, width = (int(v) for v in options["widths"].split(","))
        if min(hidden, feat, width) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(
            "three positive integers: HIDDEN,FEAT,WIDTH", param_hint="--widths"
        ) from None
    log = logging.getLogger("pafu.train")
    log.setLevel(logging.INFO)
    command = "pafu train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else ""
    start = None
    if options["init_from"]:
        from pafu_cli.models.format import load_model

        try:
            start = load_model(options["init_from"])
        except PafuError as e:
            raise click.ClickException(str(e)) from None
        if getattr(start, "task", None) != "guided_upsample":
            raise click.BadParameter(
                f"{options['init_from']}: not a guided_upsample model", param_hint="--init-from"
            )
    try:
        net, history = train(
            options["data"],
            out,
            iters=options["iters"],
            batch=options["batch"],
            patch=options["patch"] or 128,
            seed=options["seed"],
            minutes=options["minutes"] or None,
            slopes=options["slopes"],
            pool=options["pool"],
            degradations=tuple(d.strip() for d in options["degradations"].split(",") if d.strip()),
            widths=(hidden, feat, width),
            init=start,
            lr=options["guided_lr"],
            log=lambda msg: click.echo(msg, err=True),
        )
    except (ValueError, PafuError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    best = min(history, key=lambda h: h["score"])
    summary = {f"val {k}": v for k, v in best.items() if k.startswith("x")}
    training = {
        "step": best["step"],
        "seconds": history[-1]["seconds"],
        "score_vs_jbu": round(best["score"], 4),
    }
    if start is not None:
        training["init_from"] = warm_start_record(start, options["init_from"])
    data_desc = "synthetic RGB-D (pafu_cli.training.depth_data) on the training split of " + ", ".join(
        Path(d).name for d in options["data"]
    )
    model = export(net, out.stem, provenance(command, options["seed"], data_desc, summary, training))
    save_model(model, out)
    click.echo(f"wrote {out}: validation score {best['score']:.4f} (JBU = {len(summary)})", err=True)


# Options of --task guided_upsample alone (not TrainConfig fields).
GUIDED_ONLY = ("slopes", "pool", "degradations", "widths", "guided_lr")


# Options whose two values go to two TrainConfig fields; every other option is
# the field of its name.
_PAIRS = {"tau": ("tau0", "tau1"), "noise": ("noise_a", "noise_sigma")}


def _config_fields(options: dict, config_type) -> dict:
    """The ``config_type`` fields that the command's ``options`` set, by name."""
    values = {}
    for name, value in options.items():
        values.update(zip(_PAIRS[name], value) if name in _PAIRS else [(name, value)])
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - names)
    if unknown:  # an option without its field: a programming error
        raise TypeError(f"{config_type.__name__} has no field(s) {', '.join(unknown)}")
    return values

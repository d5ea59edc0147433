"""Models as files: the ``.npz`` format dispatched by filter family, the shipped
models and their registry, and the demosaick choice policy (noise, colours)."""

from pafu_cli.filters.pafu.model import PafuModel
from pafu_cli.models.choice import (
    COLOUR_CHOICES,
    denoise_family,
    mosaic_colourfulness,
    noise_level,
    pick_colour_model,
    pick_denoise_model,
    vivid_twin,
)
from pafu_cli.models.format import FAMILIES, load_model, save_model
from pafu_cli.models.registry import DEFAULT_MODELS, list_models, models_dir, resolve_model

__all__ = [
    "COLOUR_CHOICES",
    "DEFAULT_MODELS",
    "FAMILIES",
    "PafuModel",
    "denoise_family",
    "list_models",
    "load_model",
    "models_dir",
    "mosaic_colourfulness",
    "noise_level",
    "pick_colour_model",
    "pick_denoise_model",
    "resolve_model",
    "save_model",
    "vivid_twin",
]

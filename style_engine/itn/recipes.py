"""Training recipes of fast style networks: the values `atelier models train` uses when given none.

Kept apart from the parameters (and free of PyTorch) because the CLI reads them at start-up, for
its defaults (`atelier demo --itn-steps`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from style_engine.errors import InvalidInputError

# What `atelier models train` uses when it is given no option, by the device it trains on; any
# option given overrides the recipe's value, and the job's parameters record both the values used
# and the recipe's name. Figures: README, "Fast style networks", and bench/itn_acceptance.py.
#  - cpu: half scale, so that an hour on a 2-core CPU buys a network of the acceptance quality
#    (light network, 128 px crops, style Grams at 256 px, batch 4: 17 minutes on this project's
#    2-core VM). Layer balance with relu5_1 (weight 7e5, what the unbalanced weight 5 starts at,
#    spread over five layers): at 1,500 steps on four held-out photos it halved the layers'
#    geometric mean, lowered relu5_1 and raised SSIM on all four, for 1.29x the time a step; the
#    summed style distance rose on two (still within 3x Gatys-300's). Unbalanced, style weight 30
#    lost the photo at this scale. fp32: bf16 oneDNN convolutions made a step 3x slower.
#  - gpu: full scale with Johnson's network and his 40,000 steps (16 minutes on an H200): at
#    5,500 steps two of six held-out photos were still above 3x Gatys's style distance.
TRAINING_RECIPES: dict[str, dict[str, Any]] = {
    "cpu": {"arch": "light", "steps": 1500, "batch_size": 4, "crop": 128, "style_size": 256, "style_weight": 7e5,
            "balance_layers": True, "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
            "learning_rate": 1e-3, "precision": "fp32"},
    "gpu": {"arch": "johnson", "steps": 40_000, "batch_size": 8, "crop": 256, "style_size": 512, "style_weight": 30.0,
            "learning_rate": 1e-3, "precision": "auto", "checkpoint_every": 1000, "validate_every": 500},
    # `atelier demo`: one training photo (the other is held out), about two minutes of one core, a
    # style whose texture and palette show at 128 px (scikit-image's immunohistochemistry stain).
    # Measured: SSIM of luminance 0.44 / 0.59, style distance 0.05x / 0.61x the photo's own. At
    # weight 1 and 60 steps the held-out cat kept 0.78x of its distance (barely styled); at 5 or
    # more, 60 steps left SSIM at 0.2 or less.
    "demo": {"arch": "light", "steps": 150, "batch_size": 2, "crop": 128, "style_size": 256, "style_weight": 2.0,
             "learning_rate": 5e-3, "precision": "fp32", "checkpoint_every": 150, "validate_every": 150},
}


def recipe_for(device_type: str) -> str:
    """The recipe of a device: ``gpu`` on CUDA, ``cpu`` elsewhere (MPS trains in fp32 like a CPU)."""
    return "gpu" if device_type == "cuda" else "cpu"


def with_recipe(options: Mapping[str, Any], device_type: str) -> dict[str, Any]:
    """``options`` completed by a recipe: the one named by ``options["recipe"]``, else the device's."""
    name = options.get("recipe") or recipe_for(device_type)
    if name not in TRAINING_RECIPES:
        raise InvalidInputError(f"parameter recipe: {name!r} is not one of {', '.join(map(repr, TRAINING_RECIPES))}")
    return {**TRAINING_RECIPES[name], **options, "recipe": name}

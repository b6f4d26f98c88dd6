"""Typed parameters of the fast-style-network methods: ``itn-train`` (training) and ``itn`` (stylizing).

Loss layers and weights (caffe VGG-19): content at ``relu3_1``, style at relu1_1 ... relu4_1,
style weight 30 against content weight 1. The weight was chosen by training real networks on a GPU
and scoring them on held-out photos (README, "How the defaults were chosen"): at 300 or 100 the
network learns to paint the same swirls over every photo and drops its content (luminance SSIM
0.05-0.13); at 10 or 3 it keeps the photo but barely paints it; 30 does both. Dropping relu5_1 from
the style layers also stops the VGG forward at relu4_1, which is cheaper per training step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from style_engine.errors import InvalidInputError
from style_engine.itn.network import ARCHITECTURES
from style_engine.itn.recipes import TRAINING_RECIPES
from style_engine.params import METHOD_PARAMS, MAX_SIZE, MethodParams, _choice, _int, _layers, _number

ITN_CONTENT_LAYERS = ("relu3_1",)
ITN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")

@dataclass(frozen=True)
class ITNTrainParams(MethodParams):
    """Training a network for one style (or a blend): everything that determines the result.

    Steps are optimizer steps of ``batch_size`` random ``crop`` px crops (with random horizontal
    flips) of the training photos, deterministic for ``seed``. ``style_size`` is the long side at
    which the style's Gram targets are taken: the scale of its strokes relative to a crop.
    Validation losses are computed every ``validate_every`` steps, and a checkpoint is handed out
    every ``checkpoint_every`` steps.

    ``name`` (the model's name in the catalog) and ``data`` (where the photos come from: a folder
    or ``tag:NAME``) are for the job that trains it; the engine does not read them.
    """

    method: ClassVar[str] = "itn-train"

    name: str = ""
    data: str = ""
    arch: str = "johnson"
    steps: int = 2000
    batch_size: int = 4
    crop: int = 256
    learning_rate: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = ITN_CONTENT_LAYERS
    style_layers: tuple[str, ...] = ITN_STYLE_LAYERS
    style_size: int = 512
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    validate_every: int = 100
    balance_layers: bool = False
    recipe: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "data"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInputError(f"parameter {name}: expected text, got {getattr(self, name)!r}")
        _choice("arch", self.arch, tuple(ARCHITECTURES))
        _int("steps", self.steps, 1, 10_000_000)
        _int("batch_size", self.batch_size, 1, 256)
        _int("crop", self.crop, 16, 2048)
        _int("style_size", self.style_size, 16, MAX_SIZE)
        _int("seed", self.seed, 0, 2**63 - 1)
        _int("checkpoint_every", self.checkpoint_every, 1)
        _int("validate_every", self.validate_every, 1)
        _number("learning_rate", self.learning_rate, positive=True)
        for name in ("learning_rate", "content_weight", "style_weight", "tv_weight"):
            _number(name, getattr(self, name))
            object.__setattr__(self, name, float(getattr(self, name)))
        _layers("content_layers", self.content_layers)
        _layers("style_layers", self.style_layers)
        _choice("precision", self.precision, ("auto", "bf16", "fp32"))
        _choice("balance_layers", self.balance_layers, (True, False))
        _choice("recipe", self.recipe, ("", *TRAINING_RECIPES))


@dataclass(frozen=True)
class ITNParams(MethodParams):
    """Stylizing with a trained network: which model, at what size, with or without the photo's colors.

    ``model`` is a model's name or id in the catalog; the task resolves it to one stored checkpoint
    and never trains. ``size`` is the output's long side (0 keeps the photo's size).
    """

    method: ClassVar[str] = "itn"

    model: str = ""
    size: int = 512
    preserve_color: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInputError("parameter model: a trained model's name or id is required (see `atelier models ls`)")
        if self.size != 0:
            _int("size", self.size, 16, MAX_SIZE)
        _choice("preserve_color", self.preserve_color, (None, "luminance"))



METHOD_PARAMS.update({ITNParams.method: ITNParams, ITNTrainParams.method: ITNTrainParams})

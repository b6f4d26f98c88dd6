"""Typed, validated parameters for each engine method.

Parameters arrive as JSON (the catalog, the CLI, flows). They are validated here, once, into
frozen dataclasses, and serialized back by :meth:`to_dict` in a canonical form (every field,
defaults included) so that the catalog's idempotency key is stable: two requests that mean the
same thing hash the same. Unknown keys are rejected rather than ignored, because a misspelt
``stlye_weight`` would otherwise silently run with the default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from style_engine.errors import InvalidInputError
from style_engine.vgg import validate_layers

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
MAX_SIZE = 8192
# Gatys renders beyond what the device holds are computed in tiles (style_engine.gatys.tiled_objective):
# a 36-inch print at 300 dpi is 10,800 px on its long side.
GATYS_MAX_SIZE = 16384
# Multi-scale levels halve the size down to the one closest to BASE_LEVEL_SIZE (log scale), so
# ``multiscale=None`` (the default) runs coarse-to-fine where that leaves two levels or more: above
# 512 * sqrt(2) px. Measured on the H200 (Tuebingen + Starry Night, 300 evaluations): at 1024 px
# single-scale leaves the picture as a whole 2.8x less painted than a direct 512 px render
# (style_dist at 512 px), multi-scale 0.4x, in 0.8x single-scale's time.
BASE_LEVEL_SIZE = 512
MULTISCALE_ABOVE = round(BASE_LEVEL_SIZE * math.sqrt(2))

# Loss weights per VGG weight source, for the raw objective of losses.py (content MSE at relu4_2,
# Gram MSE with Grams divided by C*H*W, TV as mean squared neighbour difference on [0,1] pixels).
# The two sources see inputs at very different scales (0-255 BGR vs ImageNet-standardized), so
# one set of numbers cannot serve both.
#  - With layer balance (the default), each style layer's term is 1.0 at the photo, so the style
#    term starts at style_weight. caffe's 5e6 is what the unbalanced default (100) started at on
#    Tuebingen with Starry Night, The Great Wave or The Scream at 256-512 px (4e6 to 7e6): the
#    same pull between photo and painting, now spread evenly over the layers. torchvision's is
#    that figure scaled by its activations' size relative to caffe's (1 / (255 * 0.226))^2,
#    as its content MSE is; not tuned here because those weights cannot be fetched offline.
#  - Without balance: caffe tuned on Tuebingen + Starry Night at 384 px, 300 evaluations from
#    the content (a clearly painted, still legible city); torchvision the PyTorch tutorial's
#    convention (content 1, style 1e6 with the same normalization).
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "caffe": {"content_weight": 1.0, "style_weight": 5e6, "tv_weight": 0.0},
    "torchvision": {"content_weight": 1.0, "style_weight": 1.5e3, "tv_weight": 0.0},
}
UNBALANCED_STYLE_WEIGHTS: dict[str, float] = {"caffe": 100.0, "torchvision": 1e6}

Params = TypeVar("Params", bound="MethodParams")


class MethodParams:
    """Shared (de)serialization: canonical dicts out, strict validation in."""

    method: ClassVar[str]
    # Fields added after runs were first recorded, with the value in effect before they existed.
    # A Run's parameters are recorded whole, so a record that lacks one of these was made that
    # way, not with today's default (see :func:`recorded_params`).
    predating: ClassVar[Mapping[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe (tuples become lists), defaults included."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls: type[Params], data: Mapping[str, Any]) -> Params:
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"{cls.method} parameters: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"{cls.method} parameters: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(known))}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"parameter {name}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidInputError(f"parameter {name}: {value} is out of range (must be {bound})")


def _number(name: str, value: Any, *, positive: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"parameter {name}: expected a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise InvalidInputError(f"parameter {name}: {value} must be {'> 0' if positive else '>= 0'}")


def _choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"parameter {name}: {value!r} is not one of {', '.join(map(repr, choices))}")


def _layers(name: str, value: Any) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"parameter {name}: expected a non-empty list of layer names, got {value!r}")
    validate_layers(value, what=f"{name} entry")


@dataclass(frozen=True)
class GatysParams(MethodParams):
    """Gatys et al. (2015) optimization, optionally with color preservation (Gatys et al. 2016).

    ``iterations`` counts loss evaluations (forward + backward passes), the unit that costs time,
    including those L-BFGS spends in its line search. Loss weights left as ``None`` take the
    defaults of the VGG weight source (:data:`DEFAULT_WEIGHTS`).

    ``multiscale`` runs coarse-to-fine (``None``: above :data:`MULTISCALE_ABOVE` px), each level
    twice the previous long side, down to about :data:`BASE_LEVEL_SIZE` (``scales`` None) or over
    ``scales`` levels. A level starts from its own content plus the upsampled stylization (result
    minus content) of the previous level, and keeps the coarser levels' style terms on the image
    scaled down, so the arrangement laid out coarse survives while the detail is added; the
    coarser levels share three quarters of the evaluations. Without it a large render is a
    lightly textured photo: at the final size VGG-19 sees the painting's motifs only in patches.

    ``balance_layers`` divides each style layer's term by the photo's own Gram distance to the
    style at that layer (see :func:`style_engine.losses.balanced_layer_weights`), so that the deep
    layers, whose Grams are small, are not left behind.
    """

    method: ClassVar[str] = "gatys"
    predating: ClassVar[Mapping[str, Any]] = {"balance_layers": False}

    size: int = 512
    iterations: int = 300
    seed: int = 0
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    init: str = "content"
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    lbfgs_history: int = 50
    style_scale: float = 1.0
    multiscale: bool | None = None
    scales: int | None = None
    pooling: str = "max"
    preserve_color: str | None = None
    histogram_mode: str = "cholesky"
    precision: str = "auto"
    balance_layers: bool = True

    def __post_init__(self) -> None:
        _int("size", self.size, 32, GATYS_MAX_SIZE)
        _int("iterations", self.iterations, 1, 100_000)
        _int("seed", self.seed, 0, 2**63 - 1)
        for name in ("content_weight", "style_weight", "tv_weight", "learning_rate", "style_scale"):
            _number(name, getattr(self, name), optional=True)
            if getattr(self, name) is not None:  # 5 and 5.0 must serialize (and hash) alike
                object.__setattr__(self, name, float(getattr(self, name)))
        _layers("content_layers", self.content_layers)
        _layers("style_layers", self.style_layers)
        if self.style_layer_weights is not None:
            if not isinstance(self.style_layer_weights, tuple) or len(self.style_layer_weights) != len(self.style_layers):
                raise InvalidInputError(
                    f"parameter style_layer_weights: expected {len(self.style_layers)} numbers "
                    f"(one per style layer), got {self.style_layer_weights!r}"
                )
            for weight in self.style_layer_weights:
                _number("style_layer_weights", weight)
            object.__setattr__(self, "style_layer_weights", tuple(float(w) for w in self.style_layer_weights))
        _choice("init", self.init, ("content", "noise", "style", "image"))
        _choice("optimizer", self.optimizer, ("lbfgs", "adam"))
        _number("learning_rate", self.learning_rate, positive=True)
        _int("lbfgs_history", self.lbfgs_history, 1, 1000)
        _number("style_scale", self.style_scale, positive=True)
        if self.style_scale > 4:
            raise InvalidInputError(f"parameter style_scale: {self.style_scale} is too large (at most 4)")
        _choice("multiscale", self.multiscale, (None, True, False))
        _choice("balance_layers", self.balance_layers, (True, False))
        if self.scales is not None:
            _int("scales", self.scales, 1, 6)
        _choice("pooling", self.pooling, ("max", "avg"))
        _choice("preserve_color", self.preserve_color, (None, "luminance", "histogram"))
        _choice("histogram_mode", self.histogram_mode, ("cholesky", "pca"))
        _choice("precision", self.precision, ("auto", "bf16", "fp32"))

    def loss_weights(self, weights_source: str) -> dict[str, float]:
        """Content/style/TV weights with ``None`` resolved for ``weights_source``.

        A user state dict (``path``) is fed like the source whose layout it uses, so it takes
        that source's defaults (``preprocessing`` is the name of that source).
        """
        source = weights_source if weights_source in DEFAULT_WEIGHTS else "caffe"
        defaults = DEFAULT_WEIGHTS[source]
        if not self.balance_layers:
            defaults = defaults | {"style_weight": UNBALANCED_STYLE_WEIGHTS[source]}
        return {
            name: float(getattr(self, name) if getattr(self, name) is not None else default)
            for name, default in defaults.items()
        }


def multiscale_enabled(params: GatysParams) -> bool:
    """``multiscale`` as given, or (``None``) by size: coarse-to-fine above :data:`MULTISCALE_ABOVE` px."""
    return params.size > MULTISCALE_ABOVE if params.multiscale is None else params.multiscale


@dataclass(frozen=True)
class NoopParams(MethodParams):
    """The no-op method: output = the content resized to ``size``. Measures orchestration overhead."""

    method: ClassVar[str] = "noop"

    size: int = 256

    def __post_init__(self) -> None:
        _int("size", self.size, 32, MAX_SIZE)


METHOD_PARAMS: dict[str, type[MethodParams]] = {"gatys": GatysParams, "noop": NoopParams}


def recorded_params(method: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A Run's recorded parameters, completed with the values in effect before a field existed.

    Reproducing a run made before layer balance must optimize the unbalanced objective it ran,
    not today's default; a parameter given to a new job keeps today's default when left out.
    """
    cls = METHOD_PARAMS.get(method)
    return {**(cls.predating if cls is not None else {}), **data}


def parse_params(method: str, data: Mapping[str, Any] | MethodParams | None) -> MethodParams:
    """Validate ``data`` for ``method``; an already-typed object of the right class passes through."""
    cls = METHOD_PARAMS.get(method)
    if cls is None:
        raise InvalidInputError(f"method {method!r}: unknown; known methods are {', '.join(METHOD_PARAMS)}")
    if isinstance(data, cls):
        return data
    if isinstance(data, MethodParams):
        raise InvalidInputError(f"method {method!r}: got parameters for {data.method!r}")
    return cls.from_dict(data or {})


# Video and fast-network methods build on the classes above and register themselves in
# METHOD_PARAMS when imported; importing them here makes every method known to `parse_params`,
# whichever module is imported first.
import style_engine.itn.params  # noqa: E402,F401
import style_engine.video.params  # noqa: E402,F401

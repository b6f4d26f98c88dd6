"""The Gatys objective, and what the one-image optimizer (style_engine.gatys.render) and the batched one
(style_engine.gatys.batched) share, so that a job optimizes the same thing either way.

A job's :class:`Objective` fixes the network, weights, images, blend and color mode; a
:class:`Level` is that objective at one image size (coarse-to-fine runs several, each keeping the
coarser ones' style terms). Style targets (Gram matrices) are the one expensive thing shared
between jobs of a batch, so they live in an explicit :class:`StyleTargetCache` the caller owns.
Gram matrices and losses stay float32 whatever precision the network runs in.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from style_engine import color
from style_engine.device import bf16_supported
from style_engine.errors import InvalidInputError
from style_engine.images import image_to_tensor, resize_long_side, tensor_to_image
from style_engine.losses import balanced_layer_weights, blend_grams, content_loss, gram, layer_distances, style_loss, tv_loss
from style_engine.params import BASE_LEVEL_SIZE, GatysParams, multiscale_enabled
from style_engine.gatys.tiled_objective import DEFAULT_HALO, EXACT_HALO, Terms, TilePlan, gram_pass, loss_and_gradient, values
from style_engine.vgg import VGGFeatures

StepCallback = Callable[[int, int, dict[str, float]], None]
Grams = dict[str, torch.Tensor]
MIN_LEVEL_SIZE = 64  # below this, relu5_1 is a couple of pixels and the level teaches nothing
FIRST_STEP = 0.05  # how far L-BFGS's first step moves the most sensitive pixel, on [0, 1] pixels
COARSE_SHARE = 0.75  # of a multi-scale run's evaluations, spent below the final size (measured: 0.5-0.9 all pass)


@dataclass(frozen=True)
class ExtraTerm:
    """A caller's own loss term, added to the objective at the final size (e.g. video's temporal loss).

    ``loss`` takes the current RGB image (1, 3, H, W) on [0, 1] and returns a weighted scalar;
    its value is reported under ``name`` beside content, style and tv.
    """

    name: str
    loss: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StyleResult:
    """What a stylization produced, and the numbers the catalog records about it."""

    image: Image.Image
    losses: dict[str, float]  # at the returned image: total, content, style, tv
    initial_losses: dict[str, float]  # at the initial image, on the final-size objective
    iterations: int  # loss evaluations actually spent
    seconds: float
    cache_hit: bool  # every style target came from the cache
    metrics: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    weights_source: str = "caffe"
    weights_sha256: str = ""
    precision: str = "fp32"
    tile_plan: dict[str, Any] | None = None  # how the levels too large for the device were cut (None: all whole)


class StyleTargetCache:
    """Gram-matrix targets per (style, size, layers, weights, color mode ...), shared across jobs.

    A nightly batch applies one style to many contents; computing its Grams once saves a full
    VGG forward per job and per scale. Entries hold one style each (blending happens later), so
    any blend of cached styles is also a hit. Bounded LRU, thread-safe: tasks may run in threads.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Grams] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Grams]) -> tuple[Grams, bool]:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key], True
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value, False

    def __len__(self) -> int:
        return len(self._entries)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the device runs it natively, else fp32."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


def level_sizes(params: GatysParams) -> list[int]:
    """Long sides of the levels, coarse to fine (one level unless multi-scale), each twice the last.

    ``scales`` None: as many levels as take the coarsest closest to :data:`BASE_LEVEL_SIZE` on a
    log scale (1024 -> 512, 1024; 2048 -> 512, 1024, 2048), and at least two when multi-scale was
    asked for. The coarsest level is where the painting's arrangement is laid out, and VGG-19
    sees a painting's motifs best about there: measured on the H200 at 1024 px, a 256 px base
    cost legibility (SSIM 0.41 against 0.46) and at 2048 a 1024 px base left the picture as a
    whole half as painted (style_dist at 512 px 16.5k against 3.3k).
    """
    if not multiscale_enabled(params):
        return [params.size]
    count = params.scales or max(2, 1 + round(math.log2(params.size / BASE_LEVEL_SIZE)))
    sizes = [round(params.size / 2**k) for k in reversed(range(count))]
    return [s for s in sizes if s >= MIN_LEVEL_SIZE] or [params.size]


def level_budgets(total: int, levels: int) -> list[int]:
    """``COARSE_SHARE`` of the evaluations shared by the coarser levels, the rest for the final one.

    The coarse levels are where the painting's large-scale arrangement is made: at the final size
    of a large render, relu5_1 sees only a small patch of the image, so strokes and motifs can
    only be laid out below it. A coarse evaluation also costs a fraction of a full-size one.
    """
    if levels == 1:
        return [total]
    coarse = round(total * COARSE_SHARE) // (levels - 1)
    return [coarse] * (levels - 1) + [total - coarse * (levels - 1)]


def level_start(x: torch.Tensor, work: torch.Tensor, coarser_work: torch.Tensor | None) -> torch.Tensor:
    """Where a level starts: ``x`` (the coarser level's result, or the initial image at the final
    size) brought to the size of this level's content ``work``.

    From a coarser level, carry over only what it added to its content (the stylization), on top
    of this level's sharp content: upsampling the whole coarse result would hand the fine level a
    blurred image whose lost detail it then has to re-learn.
    """
    shape = tuple(work.shape[-2:])
    if coarser_work is not None:
        return (work + resize(x - coarser_work, shape)).clamp(0, 1)
    return resize(x, shape).clamp(0, 1) if x.shape[-2:] != shape else x


def resize(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Images (B, C, H, W) to ``shape`` (H, W): bicubic with antialiasing, so scaling down does not alias."""
    return F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True)


def check_inputs(
    styles: Sequence[Image.Image],
    style_weights: Sequence[float] | None,
    style_keys: Sequence[str] | None,
    params: GatysParams,
    init_image: Image.Image | None,
) -> list[float]:
    if not isinstance(params, GatysParams):
        raise InvalidInputError(f"stylize: expected GatysParams, got {type(params).__name__}")
    if not styles:
        raise InvalidInputError("stylize: at least one style image is required")
    blend = [1.0] * len(styles) if style_weights is None else [float(w) for w in style_weights]
    if len(blend) != len(styles):
        raise InvalidInputError(f"style weights: {len(blend)} given for {len(styles)} style images")
    if any(w < 0 or w != w for w in blend) or sum(blend) <= 0:
        raise InvalidInputError(f"style weights {blend}: must be >= 0 with a positive sum")
    if style_keys is not None and len(style_keys) != len(styles):
        raise InvalidInputError(f"style keys: {len(style_keys)} given for {len(styles)} style images")
    if params.init == "image" and init_image is None:
        raise InvalidInputError("init 'image' needs an init image")
    return blend


class Objective:
    """Everything that is fixed for one job: network, weights, images, blend, color mode."""

    def __init__(
        self,
        vgg: VGGFeatures,
        params: GatysParams,
        content: Image.Image,
        styles: Sequence[Image.Image],
        blend: list[float],
        style_keys: Sequence[str] | None,
        cache: StyleTargetCache,
    ) -> None:
        self.vgg = vgg
        self.params = params
        self.content = content.convert("RGB")
        self.styles = [s.convert("RGB") for s in styles]
        self.blend = blend
        self.keys = list(style_keys) if style_keys is not None else [_pixels_key(s) for s in self.styles]
        self.cache = cache
        self.weights = params.loss_weights(vgg.preprocessing)
        n = len(params.style_layers)
        layer_weights = params.style_layer_weights or (1.0 / n,) * n
        self.layer_weights = dict(zip(params.style_layers, layer_weights))
        self.cache_hit = True
        # The color-preserving modes make the style targets depend on the content's colors.
        reference = image_to_tensor(resize_long_side(self.content, params.size), vgg.device)
        self.color_reference = reference
        self.color_key: tuple = (params.preserve_color,)
        if params.preserve_color == "histogram":
            self.color_key += (params.histogram_mode, _tensor_key(reference))
        elif params.preserve_color == "luminance":
            self.color_key += (_tensor_key(reference),)

    @property
    def luminance(self) -> bool:
        return self.params.preserve_color == "luminance"

    def style_grams(self, size: int, tile: int | None = None) -> Grams:
        """The blended style Grams for a level of ``size`` px; ``tile``: that level is tiled, so the
        style image, as large as the level, is run through VGG in tiles of that size too."""
        style_size = max(16, round(self.params.style_scale * size))
        per_style = []
        for image, key in zip(self.styles, self.keys):
            cache_key = (
                key,
                style_size,
                tile,
                tuple(self.params.style_layers),
                self.vgg.weights_sha256,
                self.params.pooling,
                self.vgg.precision,
                str(self.vgg.device),
                self.color_key,
            )
            grams, hit = self.cache.get_or_compute(cache_key, lambda image=image: self._compute_grams(image, style_size, tile))
            self.cache_hit &= hit
            per_style.append(grams)
        return blend_grams(per_style, self.blend)

    def _compute_grams(self, image: Image.Image, style_size: int, tile: int | None) -> Grams:
        """Whole, or in tiles with a halo as wide as the receptive field: one pass without a graph,
        so exactness costs little here, and at print sizes the whole style image would not fit."""
        style = image_to_tensor(resize_long_side(image, style_size), self.vgg.device)
        if self.params.preserve_color == "histogram":
            style = color.match_histogram(style, self.color_reference, self.params.histogram_mode)
        elif self.luminance:
            style = color.match_luminance(style, self.color_reference)
        layers = tuple(self.params.style_layers)
        if tile is not None:
            return gram_pass(self.vgg, style, TilePlan(tile, EXACT_HALO), layers)[0].grams
        with torch.no_grad():
            features = self.vgg(style)
        return {name: gram(features[name]).detach() for name in layers}


class Level:
    """The objective at one image size: content and style targets, and the optimizer loop."""

    def __init__(
        self, objective: Objective, size: int, extra: ExtraTerm | None = None, coarser: Sequence[Level] = (),
        tile: TilePlan | None = None,
    ) -> None:
        self.objective = objective
        self.extra = extra
        self.coarser = tuple(coarser)
        self.params = objective.params
        self.vgg = objective.vgg
        self.content_rgb = image_to_tensor(resize_long_side(objective.content, size), self.vgg.device)
        self.shape = tuple(self.content_rgb.shape[-2:])
        # In luminance mode the optimized variable is the Y channel alone.
        self.content_work = (
            color.luminance_image(self.content_rgb)[:, :1].contiguous() if objective.luminance else self.content_rgb
        )
        # A level larger than one tile is computed tile by tile (style_engine.gatys.tiled_objective).
        self.plan = tile if tile is not None and max(self.shape) > tile.tile else None
        self.style_targets = objective.style_grams(size, self.plan.tile if self.plan else None)
        if self.plan is None:
            with torch.no_grad():
                features = self.vgg(self.to_rgb(self.content_work))
            self.content_targets = {name: features[name].float().detach() for name in self.params.content_layers}
            distances = layer_distances(features, self.style_targets)
        else:
            sums, self.content_targets = gram_pass(self.vgg, self.to_rgb(self.content_work), self.plan,
                                                   tuple(self.params.style_layers), collect=tuple(self.params.content_layers))
            distances = _gram_distances(sums.grams, self.style_targets)
        # Where the photo starts, per style layer: the yardstick of layer balance and of the ratios.
        self.photo_distances = {name: float(d) for name, d in distances.items()}
        self.layer_weights = (
            balanced_layer_weights(objective.layer_weights, self.photo_distances)
            if self.params.balance_layers
            else objective.layer_weights
        )

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """The optimized variable is luminance only (1 channel) in luminance mode."""
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if self.plan is not None:
            return self._tiled_losses(x, gradient=True)
        features = self.vgg(self.to_rgb(x))
        terms = weighted_terms(
            features, x, self.content_targets, self.style_targets, self.objective.weights, self.layer_weights
        )
        if self.coarser:
            terms.append(("coarse_style", self._coarse_style(x)))
        if self.extra is not None:
            terms.append((self.extra.name, self.extra.loss(self.to_rgb(x))))
        total = sum(value for _, value in terms)
        return total, {name: value.item() for name, value in [("total", total), *terms]}

    def style_term(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted style loss of ``features`` against this level's targets."""
        return weighted_style(features, self.style_targets, self.objective.weights, self.layer_weights)

    def _coarse_style(self, x: torch.Tensor) -> torch.Tensor:
        """The coarser levels' style terms on ``x`` scaled down to their sizes.

        A fine level only sees the painting's motifs at a fraction of the image: on its own it
        re-textures what the coarse levels laid out, and the picture seen as a whole loses its
        painted look. Keeping the coarse levels' style terms (on the image scaled down, so they
        cost a fraction of an evaluation) holds the arrangement while this level adds detail.
        """
        rgb = self.to_rgb(x)
        terms = [level.style_term(self.vgg(resize(rgb, level.shape))) for level in self.coarser]
        return sum(terms) / len(terms)

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        if self.plan is not None:
            return self._tiled_losses(x, gradient=False)[1]
        with torch.no_grad():
            return self.losses(x)[1]

    def _tiled_losses(self, x: torch.Tensor, gradient: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """:meth:`losses` of a level too large for one graph: the VGG terms come as values and a
        pixel gradient from style_engine.gatys.tiled_objective, and join the total as a linear term in
        the pixels with that value and gradient, so the optimizer sees the same objective.

        The coarser levels' style terms run one at a time, each whole or in its own tiles, so
        no two graphs are alive at once. With ``gradient`` False only the values are computed.
        """
        rgb = self.to_rgb(x)
        terms_in = Terms(self.style_targets, self._style_weights(), self.content_targets,
                         self.objective.weights["content_weight"])
        style, content = _tiled_term(self.vgg, rgb, self.plan, terms_in, gradient)
        terms = [("content", content), ("style", style),
                 ("tv", self.objective.weights["tv_weight"] * tv_loss(x))]
        if self.coarser:
            parts = [_tiled_term(self.vgg, resize(rgb, level.shape), level.plan or _whole_plan(level.shape),
                                 Terms(level.style_targets, level._style_weights(), {}), gradient)[0]
                     for level in self.coarser]
            terms.append(("coarse_style", sum(parts) / len(parts)))
        if self.extra is not None:
            with torch.set_grad_enabled(gradient and torch.is_grad_enabled()):
                terms.append((self.extra.name, self.extra.loss(rgb)))
        total = sum(value for _, value in terms)
        return total, {name: float(value.detach()) for name, value in [("total", total), *terms]}

    def _style_weights(self) -> dict[str, float]:
        """Each style layer's whole weight in the total: style weight times (balanced) layer weight."""
        return {name: self.objective.weights["style_weight"] * weight for name, weight in self.layer_weights.items()}

    def tile_plan(self) -> dict[str, int] | None:
        """How this level is cut (None: whole), as recorded on the Run."""
        return None if self.plan is None else {**self.plan.to_dict(), "tiles": self.plan.count(self.shape)}

    def layer_ratios(self, x: torch.Tensor) -> dict[str, float]:
        """Per style layer, ``x``'s Gram distance to the targets over the photo's (1.0: no style there)."""
        if self.plan is not None:
            sums, _ = gram_pass(self.vgg, self.to_rgb(x), self.plan, tuple(self.style_targets))
            distances = _gram_distances(sums.grams, self.style_targets)
        else:
            with torch.no_grad():
                distances = layer_distances(self.vgg(self.to_rgb(x)), self.style_targets)
        return {name: float(d) / self.photo_distances[name] if self.photo_distances[name] > 0 else float("nan")
                for name, d in distances.items()}

def build_levels(objective: Objective, extra: ExtraTerm | None = None, tiles: Sequence[int | None] | None = None,
                 halo: int = DEFAULT_HALO) -> list[Level]:
    """A job's levels, coarse to fine (:func:`level_sizes`), each keeping the coarser ones for their
    style terms; ``extra`` joins the final level only. ``tiles`` gives each level's tile size, cut
    with ``halo`` px of context (None: whole; style_engine.gatys.memory.plan_render chooses them)."""
    sizes = level_sizes(objective.params)
    tiles = list(tiles) if tiles is not None else [None] * len(sizes)
    levels: list[Level] = []
    for size, tile in zip(sizes, tiles):
        plan = TilePlan(tile, halo) if tile is not None else None
        levels.append(Level(objective, size, extra if size == sizes[-1] else None, coarser=tuple(levels), tile=plan))
    return levels


def _tiled_term(vgg: VGGFeatures, rgb: torch.Tensor, plan: TilePlan, terms: Terms,
                gradient: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The style and content terms of ``rgb`` as tensors: with ``gradient``, each carries its value
    and (for the sum) the tiled gradient, as ``value + <rgb, g> - <rgb, g>.detach()``."""
    if not gradient or not rgb.requires_grad:
        with torch.no_grad():
            sums, _ = gram_pass(vgg, rgb, plan, tuple(terms.style_weights), terms.content_targets)
        style, content = values(sums, terms)
        return torch.tensor(style, device=rgb.device), torch.tensor(content, device=rgb.device)
    style, content, pixel_gradient = loss_and_gradient(vgg, rgb.detach(), plan, terms)
    linear = (rgb * pixel_gradient).sum()
    return style + (linear - linear.detach()), torch.tensor(content, device=rgb.device)


def _whole_plan(shape: tuple[int, ...]) -> TilePlan:
    """One tile covering ``shape``: the level runs whole."""
    return TilePlan(-(-max(shape) // 16) * 16)


def _gram_distances(grams: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: F.mse_loss(grams[name], target) for name, target in targets.items()}


def weighted_terms(
    features: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    content_targets: Mapping[str, torch.Tensor],
    style_targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    layer_weights: Mapping[str, float],
) -> list[tuple[str, torch.Tensor]]:
    """The weighted content, style and TV terms of one image (1, C, H, W).

    One definition for the single-image optimization and the batched one
    (style_engine.gatys.compiled_objective maps it over a batch), so both optimize the same objective.
    """
    return [
        ("content", weights["content_weight"] * content_loss(features, content_targets)),
        ("style", weighted_style(features, style_targets, weights, layer_weights)),
        ("tv", weights["tv_weight"] * tv_loss(x)),
    ]


def weighted_style(
    features: Mapping[str, torch.Tensor],
    style_targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """The weighted style term: one definition for a level's own term and the coarse levels' terms,
    single-image and batched."""
    return weights["style_weight"] * style_loss(features, style_targets, layer_weights)


def initial_image(
    params: GatysParams,
    final: Level,
    styles: Sequence[Image.Image],
    init_image: Image.Image | None,
    objective: Objective,
) -> torch.Tensor:
    """The starting point at the final size (coarser levels downsample it)."""
    height, width = final.shape
    device = final.content_rgb.device
    if params.init == "content":
        return final.content_work.clone()
    if params.init == "noise":
        channels = 1 if objective.luminance else 3
        generator = torch.Generator().manual_seed(params.seed)
        return torch.rand((1, channels, height, width), generator=generator).to(device)
    source = styles[0] if params.init == "style" else init_image
    assert source is not None
    x = image_to_tensor(source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS), device)
    if objective.luminance:
        x = color.match_luminance(x, final.content_rgb)[:, :1]
    return x


def finish(final: Level, x: torch.Tensor, losses: dict[str, float], initial_losses: dict[str, float], iterations: int,
           seconds: float, cache_hit: bool) -> StyleResult:
    """The result of an optimization that ended at ``x`` (one image, at ``final``'s size), with the
    numbers the catalog records: losses, structure and colors kept, per-layer style ratios."""
    vgg, params = final.vgg, final.params
    rgb = final.to_rgb(x)
    if params.preserve_color == "luminance":
        rgb = color.recombine_luminance(rgb, final.content_rgb)
    image = tensor_to_image(rgb)
    ratios = {f"style_ratio_{name}": value for name, value in final.layer_ratios(x).items()}
    return StyleResult(
        image=image,
        losses=losses,
        initial_losses=initial_losses,
        iterations=iterations,
        seconds=seconds,
        cache_hit=cache_hit,
        metrics=_metrics(image, final.content_rgb, initial_losses, losses) | ratios,
        device=str(vgg.device),
        weights_source=vgg.weights_source,
        weights_sha256=vgg.weights_sha256,
        precision=vgg.precision,
    )


def _metrics(
    image: Image.Image, content: torch.Tensor, initial: Mapping[str, float], final: Mapping[str, float]
) -> dict[str, float]:
    """Quality numbers recorded per run: structure kept, colors kept, style loss reduction."""
    from skimage.metrics import structural_similarity  # scikit-image import is slow; only here

    output = np.asarray(image, dtype=np.float32) / 255.0
    reference = content.squeeze(0).permute(1, 2, 0).cpu().numpy().astype(np.float32)
    gray = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    ssim = structural_similarity(output @ gray, reference @ gray, data_range=1.0)
    drop = initial["style"] / final["style"] if final.get("style", 0) > 0 else float("inf")
    return {
        "ssim_to_content": float(ssim),
        "chroma_error": color.chroma_error(output, reference),
        "style_loss_drop": float(drop),
        "content_loss": final["content"],
        "style_loss": final["style"],
    }


def _pixels_key(image: Image.Image) -> str:
    """A style's identity when the caller gave none: the hash of its pixels and size."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(repr(image.size).encode())
    return digest.hexdigest()


def _tensor_key(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().numpy().tobytes()).hexdigest()

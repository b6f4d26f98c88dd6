"""Gatys et al. (2015) style transfer by optimizing the image, with color preservation (2016).

One entry point, :func:`stylize`: PIL images and a :class:`GatysParams` in, a
:class:`StyleResult` out, progress through a callback. Nothing here touches files, the catalog
or the network.

Speed choices (see DESIGN.md section 5): the VGG forward/backward runs channels_last, under
bfloat16 autocast where the device has native bf16 (``precision="auto"``); Gram matrices and
losses stay float32. Style targets (Gram matrices) are the one expensive thing shared between
jobs of a batch, so they live in an explicit :class:`StyleTargetCache` the caller owns.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from style_engine import color
from style_engine.device import bf16_supported, resolve_device
from style_engine.errors import InvalidInputError, OptimizationError
from style_engine.images import image_to_tensor, long_side_size, resize_long_side, tensor_to_image
from style_engine.losses import balanced_layer_weights, blend_grams, content_loss, gram, layer_distances, style_loss, tv_loss
from style_engine.params import BASE_LEVEL_SIZE, GatysParams, multiscale_enabled
from style_engine.vgg import VGGFeatures

StepCallback = Callable[[int, int, dict[str, float]], None]
Grams = dict[str, torch.Tensor]
MIN_LEVEL_SIZE = 64  # below this, relu5_1 is a couple of pixels and the level teaches nothing
FIRST_STEP = 0.05  # how far L-BFGS's first step moves the most sensitive pixel, on [0, 1] pixels
COARSE_SHARE = 0.75  # of a multi-scale run's evaluations, spent below the final size (measured: 0.5-0.9 all pass)
TOLERANCE_WINDOW = 10  # evaluations over which an early stop measures the relative loss decrease


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


class _BudgetSpent(Exception):
    """Raised inside the closure to stop L-BFGS exactly at the evaluation budget."""


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


def stylize(
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: GatysParams,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    weights: str = "caffe",
    cache: StyleTargetCache | None = None,
    style_keys: Sequence[str] | None = None,
    on_step: StepCallback | None = None,
    init_image: Image.Image | None = None,
    extra_term: ExtraTerm | None = None,
    tolerance: float | None = None,
) -> StyleResult:
    """Render ``content`` in the style of ``styles`` (blended by ``style_weights``).

    ``style_keys`` identify the styles in the cache (e.g. their sha256); without them a hash of
    the pixels is used. ``init_image`` is required when ``params.init == "image"``.
    ``extra_term`` joins the objective at the final size. ``tolerance`` stops the final level
    early once the best loss fell by less than that fraction over the last
    ``TOLERANCE_WINDOW`` evaluations (video frames that start close to their optimum cost less).
    """
    started = time.perf_counter()
    blend = _check_inputs(styles, style_weights, style_keys, params, init_image)
    target_device = resolve_device(device)
    precision = resolve_precision(params.precision, target_device)
    _ensure_size_fits(params, content, target_device, precision)
    vgg = VGGFeatures(
        weights,
        tuple(params.content_layers) + tuple(params.style_layers),
        params.pooling,
        target_device,
        precision,
    )
    cache = StyleTargetCache() if cache is None else cache  # an empty cache is falsy
    objective = _Objective(vgg, params, content, styles, blend, style_keys, cache)

    sizes = level_sizes(params)
    levels: list[_Level] = []
    for size in sizes:
        levels.append(_Level(objective, size, extra_term if size == sizes[-1] else None, coarser=tuple(levels)))
    budgets = level_budgets(params.iterations, len(levels))
    final = levels[-1]
    x = _initial_image(params, final, styles, init_image, objective)
    # Multi-scale starts below the final size, so measure the init on the final objective.
    initial_losses = final.evaluate(x) if len(levels) > 1 else {}
    done = 0
    best_losses: dict[str, float] = {}
    previous: _Level | None = None
    for level, budget in zip(levels, budgets):
        if previous is not None:
            # Carry over only what the coarser level added to its content (the stylization), on
            # top of this level's sharp content: upsampling the whole coarse result would hand the
            # fine level a blurred image whose lost detail it then has to re-learn.
            x = (level.content_work + _resize(x - previous.content_work, level.shape)).clamp(0, 1)
        elif x.shape[-2:] != level.shape:
            x = _resize(x, level.shape).clamp(0, 1)
        stop = tolerance if level is final else None
        x, best_losses, first, spent = level.optimize(x, budget, done, params.iterations, on_step, stop)
        previous = level
        initial_losses = initial_losses or first
        done += spent

    rgb = final.to_rgb(x)
    if params.preserve_color == "luminance":
        rgb = color.recombine_luminance(rgb, final.content_rgb)
    image = tensor_to_image(rgb)
    return StyleResult(
        image=image,
        losses=best_losses,
        initial_losses=initial_losses,
        iterations=done,
        seconds=time.perf_counter() - started,
        cache_hit=objective.cache_hit,
        metrics=_metrics(image, final.content_rgb, initial_losses, best_losses) | _ratio_metrics(final.layer_ratios(x)),
        device=str(target_device),
        weights_source=vgg.weights_source,
        weights_sha256=vgg.weights_sha256,
        precision=precision,
    )


def _ensure_size_fits(params: GatysParams, content: Image.Image, device: torch.device, precision: str) -> None:
    """Refuse, before any work, a size whose image needs more memory than the device has free."""
    from style_engine.memory import available_bytes, ensure_fits, gatys_bytes_per_image

    width, height = long_side_size(content.size, params.size)
    per_image = gatys_bytes_per_image(params, (height, width), precision)
    ensure_fits(params.size, (height, width), per_image, available_bytes(device), device)


def _resize(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True)


def _check_inputs(
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


class _Objective:
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

    def style_grams(self, size: int) -> Grams:
        style_size = max(16, round(self.params.style_scale * size))
        per_style = []
        for image, key in zip(self.styles, self.keys):
            cache_key = (
                key,
                style_size,
                tuple(self.params.style_layers),
                self.vgg.weights_sha256,
                self.params.pooling,
                self.vgg.precision,
                str(self.vgg.device),
                self.color_key,
            )
            grams, hit = self.cache.get_or_compute(cache_key, lambda image=image: self._compute_grams(image, style_size))
            self.cache_hit &= hit
            per_style.append(grams)
        return blend_grams(per_style, self.blend)

    def _compute_grams(self, image: Image.Image, style_size: int) -> Grams:
        style = image_to_tensor(resize_long_side(image, style_size), self.vgg.device)
        if self.params.preserve_color == "histogram":
            style = color.match_histogram(style, self.color_reference, self.params.histogram_mode)
        elif self.luminance:
            style = color.match_luminance(style, self.color_reference)
        with torch.no_grad():
            features = self.vgg(style)
        return {name: gram(features[name]).detach() for name in self.params.style_layers}


class _Level:
    """The objective at one image size: content and style targets, and the optimizer loop."""

    def __init__(
        self, objective: _Objective, size: int, extra: ExtraTerm | None = None, coarser: Sequence[_Level] = ()
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
        with torch.no_grad():
            features = self.vgg(self.to_rgb(self.content_work))
        self.content_targets = {name: features[name].float().detach() for name in self.params.content_layers}
        self.style_targets = objective.style_grams(size)
        # Where the photo starts, per style layer: the yardstick of layer balance and of the ratios.
        self.photo_distances = {name: float(d) for name, d in layer_distances(features, self.style_targets).items()}
        self.layer_weights = (
            balanced_layer_weights(objective.layer_weights, self.photo_distances)
            if self.params.balance_layers
            else objective.layer_weights
        )

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """The optimized variable is luminance only (1 channel) in luminance mode."""
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
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
        return self.objective.weights["style_weight"] * style_loss(features, self.style_targets, self.layer_weights)

    def _coarse_style(self, x: torch.Tensor) -> torch.Tensor:
        """The coarser levels' style terms on ``x`` scaled down to their sizes.

        A fine level only sees the painting's motifs at a fraction of the image: on its own it
        re-textures what the coarse levels laid out, and the picture seen as a whole loses its
        painted look. Keeping the coarse levels' style terms (on the image scaled down, so they
        cost a fraction of an evaluation) holds the arrangement while this level adds detail.
        """
        rgb = self.to_rgb(x)
        terms = [level.style_term(self.vgg(_resize(rgb, level.shape))) for level in self.coarser]
        return sum(terms) / len(terms)

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return self.losses(x)[1]

    def layer_ratios(self, x: torch.Tensor) -> dict[str, float]:
        """Per style layer, ``x``'s Gram distance to the targets over the photo's (1.0: no style there)."""
        with torch.no_grad():
            distances = layer_distances(self.vgg(self.to_rgb(x)), self.style_targets)
        return {name: float(d) / self.photo_distances[name] if self.photo_distances[name] > 0 else float("nan")
                for name, d in distances.items()}

    def optimize(
        self,
        x0: torch.Tensor,
        budget: int,
        offset: int,
        total: int,
        on_step: StepCallback | None,
        tolerance: float | None = None,
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, float], int]:
        """Spend ``budget`` evaluations (fewer if ``tolerance`` stops early); return the best image,
        its losses, the first losses and the evaluations spent."""
        run = _Evaluations(self, x0, budget, offset, total, on_step, tolerance)
        try:
            if self.params.optimizer == "lbfgs":
                self._lbfgs(x0, run)
            else:
                self._adam(x0, run)
        except _BudgetSpent:
            pass
        return run.best_x.clamp(0, 1), run.best_losses, run.first, run.count

    def _lbfgs(self, x0: torch.Tensor, run: _Evaluations) -> None:
        """L-BFGS on x = scale * z, the scale set so the first step moves the most sensitive pixel by FIRST_STEP.

        torch sizes L-BFGS's first step as g / |g|_1, which moves a pixel by about one over the
        number of pixels: at 768 px that is below what a bf16 forward pass resolves, so the loss
        looks flat, no curvature pair is accepted, and the next trial step (t = 1 along -g) sends
        the image to NaN. Later steps are invariant to a scalar change of variables (the curvature
        pairs carry it), so the scale fixes the first step at every size and changes nothing else.
        """
        x = x0.detach().clone().requires_grad_(True)
        first_loss = run(x)
        grad = x.grad
        assert grad is not None
        steepest = grad.abs().max()
        scale = float(FIRST_STEP * grad.abs().sum() / steepest) if steepest > 0 else 1.0
        z = (x0.detach() / scale).requires_grad_(True)
        optimizer = torch.optim.LBFGS(
            [z],
            lr=1.0,
            max_iter=run.budget,
            max_eval=2 * run.budget,  # our own counter is the binding limit
            history_size=self.params.lbfgs_history,
            line_search_fn="strong_wolfe",
        )
        pending = [(first_loss, grad * scale)]  # L-BFGS starts where the probe was: reuse it

        def closure() -> torch.Tensor:
            if pending:
                loss, z.grad = pending.pop()
                return loss
            optimizer.zero_grad(set_to_none=True)
            return run(z * scale)

        while True:
            optimizer.step(closure)

    def _adam(self, x0: torch.Tensor, run: _Evaluations) -> None:
        x = x0.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=self.params.learning_rate)

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            return run(x)

        while True:
            optimizer.step(closure)


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
    (style_engine.compiled_objective maps it over a batch), so both optimize the same objective.
    """
    return [
        ("content", weights["content_weight"] * content_loss(features, content_targets)),
        ("style", weights["style_weight"] * style_loss(features, style_targets, layer_weights)),
        ("tv", weights["tv_weight"] * tv_loss(x)),
    ]


class _Evaluations:
    """One level's loss evaluations: counts them against the budget, keeps the best image, reports progress."""

    def __init__(
        self,
        level: _Level,
        x0: torch.Tensor,
        budget: int,
        offset: int,
        total: int,
        on_step: StepCallback | None,
        tolerance: float | None = None,
    ) -> None:
        self.level = level
        self.tolerance = tolerance
        self.best_history: list[float] = []
        self.budget = budget
        self.offset = offset
        self.total = total
        self.on_step = on_step
        self.count = 0
        self.best = float("inf")
        self.best_x = x0  # what a level with no budget hands on
        self.best_losses: dict[str, float] = {}
        self.first: dict[str, float] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The loss at ``x`` (pixels), back-propagated into whichever leaf ``x`` derives from."""
        if self.count >= self.budget:
            raise _BudgetSpent
        loss, values = self.level.losses(x)
        if not math.isfinite(values["total"]):
            remedy = "lower the learning_rate" if self.level.params.optimizer == "adam" else "try precision fp32"
            raise OptimizationError(
                f"the optimization diverged at evaluation {self.offset + self.count + 1} "
                f"(total loss {values['total']}); {remedy}"
            )
        loss.backward()
        self.count += 1
        if self.count == 1:
            self.first = values
        if values["total"] < self.best:
            self.best, self.best_x, self.best_losses = values["total"], x.detach().clone(), values
        if self.on_step is not None:
            self.on_step(self.offset + self.count, self.total, values)
        self._stop_if_converged()
        return loss

    def _stop_if_converged(self) -> None:
        """End the level once the best loss improved by less than ``tolerance`` (relative) in a window."""
        self.best_history.append(self.best)
        if self.tolerance is None or len(self.best_history) <= TOLERANCE_WINDOW:
            return
        before = self.best_history[-1 - TOLERANCE_WINDOW]
        if before - self.best <= self.tolerance * abs(self.best):
            raise _BudgetSpent


def _initial_image(
    params: GatysParams,
    final: _Level,
    styles: Sequence[Image.Image],
    init_image: Image.Image | None,
    objective: _Objective,
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


def _ratio_metrics(ratios: Mapping[str, float]) -> dict[str, float]:
    """Per style layer, how far the output still is from the style relative to the photo (engine's view)."""
    return {f"style_ratio_{name}": value for name, value in ratios.items()}


def _pixels_key(image: Image.Image) -> str:
    """A style's identity when the caller gave none: the hash of its pixels and size."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(repr(image.size).encode())
    return digest.hexdigest()


def _tensor_key(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().numpy().tobytes()).hexdigest()

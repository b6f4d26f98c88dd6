"""The Gatys objective over a batch of images, with its gradient: eager, or compiled and cached.

A batch evaluation is one VGG forward/backward over B images; the per-image terms are
:func:`style_engine.gatys.objective.weighted_terms` mapped over the batch with ``torch.func.vmap``, so the
batched objective is, image for image, the one a job optimizes alone.

Compiling (``torch.compile``; on CUDA with CUDA graphs, ``mode="reduce-overhead"``) removes the
kernel-launch overhead that dominates at small sizes, but costs tens of seconds the first time a
shape is seen. So compiled objectives are cached per (device, batch shape, layers, VGG weights,
loss weights) for the life of the worker process, and only the first batch of a shape pays. A CPU
keeps the eager path by default (bench/gpu.py measures both). If compiling fails, the objective
falls back to eager for good and says so in :attr:`BatchObjective.fallback`, which the caller
puts in the run log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from functools import cache, partial

import torch

from style_engine.gatys.objective import resize, weighted_style, weighted_terms
from style_engine.vgg import VGGFeatures

TERMS = ("total", "content", "style", "tv")
COARSE_TERM = "coarse_style"
MAX_CACHED = 16  # distinct shapes a worker keeps compiled; a nightly gallery sees a handful

Targets = Mapping[str, torch.Tensor]
Compiler = Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]
logger = logging.getLogger(__name__)


def batch_terms(
    vgg: VGGFeatures,
    weights: Mapping[str, float],
    coarse_shapes: tuple[tuple[int, int], ...],
    x: torch.Tensor,
    content_targets: Targets,
    style_targets: Targets,
    layer_weights: Targets,
    coarse_targets: tuple[Targets, ...] = (),
    coarse_layer_weights: tuple[Targets, ...] = (),
) -> torch.Tensor:
    """Terms of each image of ``x`` (B, C, H, W; C = 1 for luminance): (B, 4) total, content, style,
    tv; and a fifth, coarse_style, when ``coarse_shapes`` is not empty.

    Targets carry a leading batch dimension: content features (B, C, h, w), Grams (B, C, C), and
    style layer weights (B,) per layer: with layer balance each photo has its own. A coarse-to-fine
    level also keeps the coarser levels' style terms, on the image scaled down to each coarser
    shape (``coarse_targets[k]``, ``coarse_layer_weights[k]`` for ``coarse_shapes[k]``), averaged,
    as :meth:`style_engine.gatys.objective.Level.losses` does for one image.
    """
    rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    features = vgg(rgb)

    def one(image: torch.Tensor, feats: Targets, content: Targets, style: Targets, layers: Targets) -> torch.Tensor:
        terms = weighted_terms(
            {name: value.unsqueeze(0) for name, value in feats.items()},
            image.unsqueeze(0),
            {name: value.unsqueeze(0) for name, value in content.items()},
            style,
            weights,
            layers,
        )
        values = torch.stack([value for _, value in terms])
        return torch.cat([values.sum().unsqueeze(0), values])

    terms = torch.func.vmap(one)(x, features, dict(content_targets), dict(style_targets), dict(layer_weights))
    if not coarse_shapes:
        return terms

    def coarse_one(feats: Targets, style: Targets, layers: Targets) -> torch.Tensor:
        return weighted_style({name: value.unsqueeze(0) for name, value in feats.items()}, style, weights, layers)

    coarse = torch.stack([
        torch.func.vmap(coarse_one)(vgg(resize(rgb, shape)), dict(grams), dict(layers))
        for shape, grams, layers in zip(coarse_shapes, coarse_targets, coarse_layer_weights)
    ]).mean(0)
    return torch.cat([terms[:, :1] + coarse[:, None], terms[:, 1:], coarse[:, None]], dim=1)


def term_names(coarse_levels: int) -> tuple[str, ...]:
    """The names of :func:`batch_terms`' columns, as the single-image engine reports them."""
    return TERMS + (COARSE_TERM,) if coarse_levels else TERMS


@cache
def default_compiler(device_type: str) -> Compiler:
    """``torch.compile`` with CUDA graphs on CUDA (static shapes), plain inductor elsewhere.

    One object per device type: it is part of the objective cache's key.
    """
    mode = "reduce-overhead" if device_type == "cuda" else None
    return partial(torch.compile, mode=mode, dynamic=False)


class BatchObjective:
    """Value and gradient of the batched objective; compiled when asked, eager after a compile failure."""

    def __init__(self, vgg: VGGFeatures, weights: Mapping[str, float], compiler: Compiler | None,
                 coarse_shapes: tuple[tuple[int, int], ...] = ()) -> None:
        self.device = vgg.device
        self.names = term_names(len(coarse_shapes))
        self._eager = partial(batch_terms, vgg, dict(weights), coarse_shapes)
        self._function = compiler(self._eager) if compiler is not None else self._eager
        self.compiled = compiler is not None
        self.fallback: str | None = None  # why a compiled objective runs eager, for the run log
        self._lock = threading.Lock()  # one batch at a time per compiled graph (CUDA graphs are not reentrant)

    def __call__(self, x: torch.Tensor, *targets: Targets | tuple[Targets, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Terms (B, len(names)) and the gradient of each image's total loss with respect to its pixels.

        ``targets``: what :func:`batch_terms` takes after ``x``.
        """
        with self._lock:
            if self.compiled:
                try:
                    return self._value_and_grad(self._function, x, *targets)
                except torch.OutOfMemoryError:
                    raise  # the batch splits (style_engine.gatys.batched); eager would not fit either
                except Exception as exc:  # compile errors come in many types (dynamo, inductor, a C compiler)
                    self._fall_back(exc)
            return self._value_and_grad(self._eager, x, *targets)

    def _fall_back(self, exc: Exception) -> None:
        root: BaseException = exc
        # dynamo wraps the backend's own error (inner_exception, or the cause): name that one
        while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
            root = inner
        first_line = next((line for line in str(root).splitlines() if line.strip()), "")[:300]
        self.fallback = (f"compiling the objective failed ({type(exc).__name__}: {type(root).__name__}: {first_line}); "
                         "running it eager")
        logger.warning(self.fallback)
        self.compiled = False
        self._function = self._eager

    def _value_and_grad(self, function: Callable[..., torch.Tensor], x: torch.Tensor,
                        *targets: Targets | tuple[Targets, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        terms = function(x, *targets)
        (grad,) = torch.autograd.grad(terms[:, 0].sum(), x)
        # A CUDA graph's outputs live in memory its next replay overwrites: keep copies.
        return terms.detach().clone(), grad.clone()


_cache: dict[Hashable, BatchObjective] = {}
_cache_lock = threading.Lock()


def objective_for(
    key: Hashable,
    build_vgg: Callable[[], VGGFeatures],
    weights: Mapping[str, float],
    compiler: Compiler | None,
    coarse_shapes: tuple[tuple[int, int], ...] = (),
) -> BatchObjective:
    """The process's objective for ``key`` (device, shape, layers, weights ...), built on first use.

    The cached objective owns its VGG module: a compiled graph is specialised to the module it
    traced, so jobs of one shape must share it for the compile to be paid once.
    """
    with _cache_lock:
        objective = _cache.get(key)
        if objective is None:
            while len(_cache) >= MAX_CACHED:
                _cache.pop(next(iter(_cache)))
            objective = _cache[key] = BatchObjective(build_vgg(), weights, compiler, coarse_shapes)
        return objective


def clear_objectives() -> None:
    """Forget cached objectives (tests; freeing accelerator memory)."""
    with _cache_lock:
        _cache.clear()

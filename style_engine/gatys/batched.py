"""Gatys style transfer for many contents that share a style, a size and the method's parameters.

:func:`stylize_batch` is the batched twin of :func:`style_engine.gatys.render.stylize`: the same targets
(built by the same ``Objective``/``Level`` code, style Grams computed once through the shared
cache), the same levels and budgets, the same objective (``weighted_terms`` mapped over the
batch), and an L-BFGS that keeps each image's history and line search its own
(style_engine.gatys.batched_lbfgs). Images evaluate together in one VGG forward/backward.

Images batch only with images of the same pixel shapes at every level (contents of other aspect
ratios run as their own batches), as many at once as the free memory holds. Each image's outcome is its own:
a NaN, a failing progress callback (a lost lease, a stop request) or bad input fails that image
only. An out-of-memory error halves the batch and runs the halves again; one image that does not
fit fails alone. A size that cannot fit even alone is refused before any work, naming the size
and the memory it needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from style_engine.gatys.batched_lbfgs import minimize
from style_engine.gatys.compiled_objective import BatchObjective, Compiler, default_compiler, objective_for, term_names
from style_engine.device import resolve_device
from style_engine.errors import InvalidInputError, OptimizationError
from style_engine.gatys.objective import (
    FIRST_STEP,
    Level,
    Objective,
    StepCallback,
    StyleResult,
    StyleTargetCache,
    build_levels,
    check_inputs,
    finish,
    initial_image,
    level_budgets,
    level_sizes,
    level_start,
    resolve_precision,
)
from style_engine.images import long_side_size
from style_engine.gatys.memory import available_bytes, batch_capacity, ensure_fits, gatys_bytes_per_image
from style_engine.params import GatysParams
from style_engine.vgg import VGGFeatures


@dataclass
class ItemOutcome:
    """One content's outcome: a result, or the error that failed it alone; warnings for its run log."""

    result: StyleResult | None = None
    error: BaseException | None = None
    warnings: list[str] = field(default_factory=list)


def batchable(params: GatysParams) -> bool:
    """Whether jobs with these parameters can share an optimization: L-BFGS from content, noise or
    style (an init image is one job's own). Coarse-to-fine jobs batch level by level."""
    return params.optimizer == "lbfgs" and params.init != "image"


def stylize_batch(
    contents: Sequence[Image.Image],
    styles: Sequence[Image.Image],
    params: GatysParams,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    weights: str = "caffe",
    cache: StyleTargetCache | None = None,
    style_keys: Sequence[str] | None = None,
    on_steps: Sequence[StepCallback | None] | None = None,
    compile: bool | None = None,
    max_batch: int | None = None,
    compiler: Compiler | None = None,
) -> list[ItemOutcome]:
    """Stylize each of ``contents`` as :func:`stylize` would alone; one outcome per content, in order.

    ``on_steps[i]`` is content i's progress callback; an exception it raises fails content i only
    (its outcome's ``error``). ``compile`` defaults to compiling on CUDA only; ``max_batch`` caps
    the images per optimization (default: what the free memory holds); ``compiler`` replaces
    ``torch.compile`` (tests force a failure with it).
    """
    blend = check_inputs(styles, style_weights, style_keys, params, None)
    if not batchable(params):
        raise InvalidInputError("batched gatys: needs optimizer 'lbfgs' and an init other than 'image'")
    callbacks = list(on_steps) if on_steps is not None else [None] * len(contents)
    if len(callbacks) != len(contents):
        raise InvalidInputError(f"batched gatys: {len(callbacks)} progress callbacks for {len(contents)} contents")
    target_device = resolve_device(device)
    precision = resolve_precision(params.precision, target_device)
    use_compiler = (compiler or default_compiler(target_device.type)) if _compiling(compile, target_device) else None
    run = _BatchRun(params, styles, blend, style_keys, target_device, precision, weights,
                    StyleTargetCache() if cache is None else cache, use_compiler)
    outcomes = [ItemOutcome() for _ in contents]
    # Images batch when every level's pixel shape agrees: two aspect ratios that round to one final
    # shape can still round apart at a coarser level.
    by_shapes: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for index, content in enumerate(contents):
        shapes = tuple(long_side_size(content.size, size)[::-1] for size in level_sizes(params))
        by_shapes.setdefault(shapes, []).append(index)
    for shapes, indices in by_shapes.items():
        shape = shapes[-1]
        per_image = gatys_bytes_per_image(params, shape, precision)
        available = available_bytes(target_device)
        try:
            ensure_fits(params.size, shape, per_image, available, target_device)
        except InvalidInputError as exc:
            for index in indices:
                outcomes[index].error = exc
            continue
        capacity = batch_capacity(per_image, available, target_device, max_batch)
        for start in range(0, len(indices), capacity):
            chunk = indices[start:start + capacity]
            run_splitting_on_oom(chunk, lambda rows: run.optimize(rows, contents, callbacks, outcomes), outcomes)
    return outcomes


def _compiling(compile: bool | None, device: torch.device) -> bool:
    return device.type == "cuda" if compile is None else compile


def run_splitting_on_oom(rows: list[int], optimize: Callable[[list[int]], None], outcomes: list[ItemOutcome]) -> None:
    """Run ``rows`` together; on out-of-memory run each half again, down to single images.

    A single image that still does not fit fails alone with the reason; the others go on.
    """
    try:
        optimize(rows)
    except torch.OutOfMemoryError as exc:
        _free_cached_memory()
        if len(rows) == 1:
            outcomes[rows[0]].error = InvalidInputError(f"out of device memory for one image at this size: {exc}")
            return
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            for row in part:
                outcomes[row].warnings.append(f"out of memory in a batch of {len(rows)}: retried in a batch of {len(part)}")
            run_splitting_on_oom(part, optimize, outcomes)


def _free_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _BatchRun:
    """What every sub-batch of one call shares: parameters, styles, network, cache, compiler."""

    def __init__(self, params: GatysParams, styles: Sequence[Image.Image], blend: list[float],
                 style_keys: Sequence[str] | None, device: torch.device, precision: str, weights: str,
                 cache: StyleTargetCache, compiler: Compiler | None) -> None:
        self.params, self.styles, self.blend, self.style_keys = params, styles, blend, style_keys
        self.device, self.precision, self.weights, self.cache, self.compiler = device, precision, weights, cache, compiler
        self.layers = tuple(params.content_layers) + tuple(params.style_layers)
        self.vgg = VGGFeatures(weights, self.layers, params.pooling, device, precision)

    def optimize(self, rows: list[int], contents: Sequence[Image.Image], callbacks: list[StepCallback | None],
                 outcomes: list[ItemOutcome]) -> None:
        """One optimization of ``rows`` (same shape); fills their outcomes. OOM propagates (the caller splits)."""
        started = time.perf_counter()
        members: list[int] = []
        objectives: dict[int, Objective] = {}
        for row in rows:
            try:
                objectives[row] = Objective(self.vgg, self.params, contents[row], self.styles, self.blend,
                                             self.style_keys, self.cache)
                members.append(row)
            except (InvalidInputError, OptimizationError) as exc:
                outcomes[row].error = exc
        if not members:
            return
        sizes = level_sizes(self.params)
        levels = {row: build_levels(objectives[row]) for row in members}
        finals = [levels[row][-1] for row in members]
        x = torch.cat([initial_image(self.params, levels[row][-1], self.styles, None, objectives[row]) for row in members])
        stopped: dict[int, BaseException] = {}
        done = 0
        best_terms: list[list[float] | None] = [None] * len(members)
        initial: list[list[float] | None] = [None] * len(members)
        if len(sizes) > 1:  # multi-scale starts below the final size: measure the init on the final objective
            final_objective = self._objective(finals, x)
            initial = final_objective(x, *_stacked_targets(finals))[0].cpu().double().tolist()
        previous: torch.Tensor | None = None
        for depth, budget in enumerate(level_budgets(self.params.iterations, len(sizes))):
            level_group = [levels[row][depth] for row in members]
            work = torch.cat([level.content_work for level in level_group])
            x = level_start(x, work, previous)
            objective = self._objective(level_group, x)
            targets = _stacked_targets(level_group)
            on_round = self._reporter(members, callbacks, stopped, done, objective.names)
            outcome = minimize(lambda points: objective(points, *targets), x, budget,
                               history=self.params.lbfgs_history, first_step=FIRST_STEP, on_round=on_round)
            self._note_compile_fallback(objective, members, outcomes)
            x = outcome.best_x.clamp(0, 1)
            for position, row in enumerate(members):
                if outcome.failures[position] and row not in stopped:
                    stopped[row] = OptimizationError(f"the optimization diverged: {outcome.failures[position]}; "
                                                     "try precision fp32")
                best_terms[position] = outcome.best_terms[position] or best_terms[position]
                initial[position] = initial[position] or outcome.first_terms[position]
            done += max(outcome.evaluations, default=0)
            previous = work
        seconds = (time.perf_counter() - started) / len(members)
        names = term_names(len(sizes) - 1)
        for position, row in enumerate(members):
            if row in stopped:
                outcomes[row].error = stopped[row]
                continue
            outcomes[row].result = self._result(finals[position], x[position:position + 1], names, best_terms[position],
                                                initial[position], done, seconds, objectives[row].cache_hit)

    def _objective(self, levels: list[Level], x: torch.Tensor) -> BatchObjective:
        objective = levels[0].objective
        coarse_shapes = tuple(level.shape for level in levels[0].coarser)
        key = (str(self.device), tuple(x.shape), coarse_shapes, self.layers, self.vgg.weights_sha256, self.params.pooling,
               self.precision, tuple(sorted(objective.weights.items())), self.compiler)
        return objective_for(key, lambda: VGGFeatures(self.weights, self.layers, self.params.pooling, self.device,
                                                      self.precision),
                             objective.weights, self.compiler, coarse_shapes)

    def _reporter(self, members: list[int], callbacks: list[StepCallback | None], stopped: dict[int, BaseException],
                  offset: int, names: tuple[str, ...]) -> Callable[[torch.Tensor, list[bool]], set[int]]:
        """Per-image progress callbacks after each round; an image whose callback raises stops alone."""
        counts = [0] * len(members)
        total = self.params.iterations

        def on_round(terms: torch.Tensor, live: list[bool]) -> set[int]:
            stop: set[int] = set()
            for position, row in enumerate(members):
                if row in stopped:
                    stop.add(position)
                    continue
                if not live[position]:
                    continue
                counts[position] += 1
                callback = callbacks[row]
                if callback is None:
                    continue
                try:
                    callback(offset + counts[position], total, dict(zip(names, terms[position].tolist())))
                except Exception as exc:  # a lost lease, a stop request: this image's job ends, the batch goes on
                    stopped[row] = exc
                    stop.add(position)
            return stop

        return on_round

    @staticmethod
    def _note_compile_fallback(objective: BatchObjective, members: list[int], outcomes: list[ItemOutcome]) -> None:
        if objective.fallback:
            for row in members:
                if objective.fallback not in outcomes[row].warnings:
                    outcomes[row].warnings.append(objective.fallback)

    def _result(self, final: Level, x: torch.Tensor, names: tuple[str, ...], best: list[float] | None,
                first: list[float] | None, iterations: int, seconds: float, cache_hit: bool) -> StyleResult:
        assert best is not None and first is not None
        return finish(final, x, dict(zip(names, best)), dict(zip(names, first)), iterations, seconds, cache_hit)


def _stacked_targets(levels: list[Level]) -> tuple[Any, ...]:
    """What :func:`style_engine.gatys.compiled_objective.batch_terms` takes after the images, for one level of
    each image: content features, style Grams and style layer weights (each photo's own under layer
    balance), stacked along a batch dimension; then the same Grams and weights of each coarser level."""
    content = {name: torch.cat([level.content_targets[name] for level in levels]) for name in levels[0].content_targets}
    style, layer_weights = _stacked_style(levels)
    coarse = [_stacked_style([level.coarser[depth] for level in levels]) for depth in range(len(levels[0].coarser))]
    return (content, style, layer_weights, tuple(grams for grams, _ in coarse), tuple(weights for _, weights in coarse))


def _stacked_style(levels: list[Level]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    device = levels[0].content_rgb.device
    grams = {name: torch.stack([level.style_targets[name] for level in levels]) for name in levels[0].style_targets}
    weights = {name: torch.tensor([level.layer_weights[name] for level in levels], device=device)
               for name in levels[0].style_targets}
    return grams, weights


def fits_whole(params: GatysParams, device: str | torch.device) -> bool:
    """Whether a job with ``params`` fits ``device`` untiled (a square image, the most any aspect ratio
    needs). Only such jobs batch: a render that needs tiles (style_engine.gatys.tiled_objective) runs alone."""
    target = resolve_device(device)
    per_image = gatys_bytes_per_image(params, (params.size, params.size), resolve_precision(params.precision, target))
    return per_image <= available_bytes(target)


def images_per_batch(params: GatysParams, device: str | torch.device) -> int:
    """How many jobs with ``params`` to hand the engine at once on ``device`` (a square image's memory, the most
    any aspect ratio at that size needs)."""
    target = resolve_device(device)
    per_image = gatys_bytes_per_image(params, (params.size, params.size), resolve_precision(params.precision, target))
    return batch_capacity(per_image, available_bytes(target), target)

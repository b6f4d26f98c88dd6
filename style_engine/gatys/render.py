"""Gatys et al. (2015) style transfer by optimizing the image, with color preservation (2016).

One entry point, :func:`stylize`: PIL images and a :class:`GatysParams` in, a
:class:`StyleResult` out, progress through a callback. Nothing here touches files, the catalog
or the network. The objective itself (targets, levels, terms) is style_engine.gatys.objective,
shared with the batched optimizer (style_engine.gatys.batched).

Speed choices (see DESIGN.md section 5): the VGG forward/backward runs channels_last, under
bfloat16 autocast where the device has native bf16 (``precision="auto"``); Gram matrices and
losses stay float32.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from PIL import Image

from style_engine.device import resolve_device
from style_engine.errors import OptimizationError
from style_engine.gatys.objective import (
    FIRST_STEP,
    ExtraTerm,
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
from style_engine.gatys.memory import RenderPlan
from style_engine.params import GatysParams
from style_engine.vgg import VGGFeatures

TOLERANCE_WINDOW = 10  # evaluations over which an early stop measures the relative loss decrease


class _BudgetSpent(Exception):
    """Raised inside the closure to stop L-BFGS exactly at the evaluation budget."""


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
    tiles: RenderPlan | int | None = None,
) -> StyleResult:
    """Render ``content`` in the style of ``styles`` (blended by ``style_weights``).

    ``style_keys`` identify the styles in the cache (e.g. their sha256); without them a hash of
    the pixels is used. ``init_image`` is required when ``params.init == "image"``.
    ``extra_term`` joins the objective at the final size. ``tolerance`` stops the final level
    early once the best loss fell by less than that fraction over the last
    ``TOLERANCE_WINDOW`` evaluations (video frames that start close to their optimum cost less).
    ``tiles``: None plans the tiles from the free memory (style_engine.gatys.memory.plan_render), whole
    where the render fits; a :class:`RenderPlan` (a recorded run's) is followed as it is, so that
    the render is made again bit for bit whatever memory is free; a tile size (a multiple of 16 px)
    cuts every level larger than it into tiles of that size (to try tiling at small sizes).
    """
    started = time.perf_counter()
    blend = check_inputs(styles, style_weights, style_keys, params, init_image)
    target_device = resolve_device(device)
    precision = resolve_precision(params.precision, target_device)
    plan = plan_memory(params, content, target_device, precision, tiles)
    vgg = VGGFeatures(
        weights,
        tuple(params.content_layers) + tuple(params.style_layers),
        params.pooling,
        target_device,
        precision,
    )
    cache = StyleTargetCache() if cache is None else cache  # an empty cache is falsy
    objective = Objective(vgg, params, content, styles, blend, style_keys, cache)

    levels = build_levels(objective, extra_term, plan.tiles, plan.halo)
    budgets = level_budgets(params.iterations, len(levels))
    final = levels[-1]
    x = initial_image(params, final, styles, init_image, objective)
    # Multi-scale starts below the final size, so measure the init on the final objective.
    initial_losses = final.evaluate(x) if len(levels) > 1 else {}
    done = 0
    best_losses: dict[str, float] = {}
    previous: Level | None = None
    for level, budget in zip(levels, budgets):
        x = level_start(x, level.content_work, previous.content_work if previous is not None else None)
        stop = tolerance if level is final else None
        history = plan.final_history if level is final else params.lbfgs_history
        x, best_losses, first, spent = _optimize(level, x, budget, done, params.iterations, on_step, stop, history)
        previous = level
        initial_losses = initial_losses or first
        done += spent

    result = finish(final, x, best_losses, initial_losses, done, time.perf_counter() - started, objective.cache_hit)
    if plan.final_history != params.lbfgs_history or plan.tiled:
        result.tile_plan = {"halo": plan.halo, "lbfgs_history": plan.final_history,
                            "levels": [level.tile_plan() or {"tiles": 1} for level in levels]}
    return result


def plan_memory(params: GatysParams, content: Image.Image, device: torch.device, precision: str,
                tiles: RenderPlan | int | None = None) -> RenderPlan:
    """Each level whole where it fits the free memory, else in tiles (refused only when even the
    image-sized buffers do not fit); a tile size forces the tiles; a recorded plan is followed
    where it fits, and refused with the memory it needs where it does not."""
    from style_engine.gatys.memory import available_bytes, check_replay_fits, forced_plan, plan_render

    shapes = [long_side_size(content.size, size)[::-1] for size in level_sizes(params)]
    if isinstance(tiles, RenderPlan):
        check_replay_fits(tiles, params, shapes, precision, available_bytes(device), device)
        return tiles
    if tiles is not None:
        return forced_plan(params, shapes, tiles)
    return plan_render(params, shapes, precision, available_bytes(device), device)


def _optimize(
    level: Level,
    x0: torch.Tensor,
    budget: int,
    offset: int,
    total: int,
    on_step: StepCallback | None,
    tolerance: float | None = None,
    history: int | None = None,
) -> tuple[torch.Tensor, dict[str, float], dict[str, float], int]:
    """Spend ``budget`` evaluations (fewer if ``tolerance`` stops early); return the best image,
    its losses, the first losses and the evaluations spent. ``history``: L-BFGS pairs (default
    the parameters')."""
    run = _Evaluations(level, x0, budget, offset, total, on_step, tolerance)
    try:
        if level.params.optimizer == "lbfgs":
            _lbfgs(x0, run, history or level.params.lbfgs_history)
        else:
            _adam(x0, run)
    except _BudgetSpent:
        pass
    return run.best_x.clamp(0, 1), run.best_losses, run.first, run.count


def _lbfgs(x0: torch.Tensor, run: _Evaluations, history: int) -> None:
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
        history_size=history,
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


def _adam(x0: torch.Tensor, run: _Evaluations) -> None:
    x = x0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=run.level.params.learning_rate)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        return run(x)

    while True:
        optimizer.step(closure)




class _Evaluations:
    """One level's loss evaluations: counts them against the budget, keeps the best image, reports progress."""

    def __init__(
        self,
        level: Level,
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


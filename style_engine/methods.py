"""One dispatch point from a job's method name to the engine: what orchestration tasks call."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from style_engine.gatys.render import StepCallback, StyleResult, StyleTargetCache, stylize
from style_engine.images import resize_long_side
from style_engine.gatys.memory import RenderPlan
from style_engine.params import GatysParams, MethodParams, NoopParams, parse_params


def run_method(
    method: str,
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: Mapping[str, Any] | MethodParams | None,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    weights: str = "caffe",
    cache: StyleTargetCache | None = None,
    style_keys: Sequence[str] | None = None,
    on_step: StepCallback | None = None,
    tiles: RenderPlan | None = None,
) -> StyleResult:
    """Validate ``params`` for ``method`` and run it. Unknown methods and bad params raise InvalidInputError.

    ``tiles``: a recorded run's render plan, to make it again as it was made (None: planned here)."""
    parsed = parse_params(method, params)
    if isinstance(parsed, NoopParams):
        return _noop(content, parsed)
    assert isinstance(parsed, GatysParams)
    return stylize(
        content,
        styles,
        parsed,
        style_weights=style_weights,
        device=device,
        weights=weights,
        cache=cache,
        style_keys=style_keys,
        on_step=on_step,
        tiles=tiles,
    )


def _noop(content: Image.Image, params: NoopParams) -> StyleResult:
    """Content resized, no network: isolates the cost of orchestration (claim, fetch, upload, record)."""
    started = time.perf_counter()
    image = resize_long_side(content.convert("RGB"), params.size)
    zeros = {"total": 0.0, "content": 0.0, "style": 0.0, "tv": 0.0}
    return StyleResult(
        image=image,
        losses=dict(zeros),
        initial_losses=dict(zeros),
        iterations=0,
        seconds=time.perf_counter() - started,
        cache_hit=False,
        metrics={},
        device="cpu",
        weights_source="none",
        weights_sha256="",
        precision="none",
    )

"""Parameters of Ruder et al.'s (2016) video Gatys: every Gatys parameter, plus the temporal ones.

Flat (not nested) so that ``--param temporal_weight=...`` works like any Gatys key, and
canonical like every method's parameters: they form the job's idempotency key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from style_engine.errors import InvalidInputError
from style_engine.flow import FLOW_METHODS
from style_engine.params import METHOD_PARAMS, GatysParams, _choice, _int, _number

# Temporal weight per VGG weight source, in the engine's own loss scale: the temporal term is the
# mean over pixels and channels of mask * (x - warped previous)^2 on [0, 1] pixels, against the
# raw content MSE (relu4_2) and style_weight * Gram MSE of losses.py. Measured on the squirrel
# clip at 320 px with Starry Night (README, "Video"): see the sweep there.
DEFAULT_TEMPORAL_WEIGHTS = {"caffe": 1e7, "torchvision": 1e7}
MAX_OFFSET = 16


@dataclass(frozen=True)
class VideoGatysParams(GatysParams):
    """Gatys per frame, chained along optical flow (Ruder et al. 2016).

    ``iterations`` is the first frame's budget (and that of a frame after a scene cut);
    ``frame_iterations`` that of every later frame, which starts from the warped previous result
    and stops early once its loss falls by less than ``tolerance`` (relative) over 10 evaluations.
    ``long_term`` are the offsets J of earlier frames the temporal loss looks at, closest first;
    each pixel is held to the closest of them in which it is visible. ``temporal=False`` is the
    per-frame baseline (each frame alone from ``init``, same budgets, no early stop), kept for comparison.
    ``passes`` > 1 adds Ruder's multi-pass: alternate backward and forward sweeps over the whole
    clip, each frame re-optimized for ``frame_iterations`` from a blend with its refined neighbour.
    ``start`` and ``frames`` pick the frame range (``frames`` None: to the end).
    """

    method: ClassVar[str] = "video_gatys"

    size: int = 512
    frame_iterations: int = 150
    tolerance: float | None = 1e-3
    temporal: bool = True
    temporal_weight: float | None = None
    long_term: tuple[int, ...] = (1, 2, 4)
    flow: str = "dis"
    scene_cut: float = 0.5
    passes: int = 1
    start: int = 0
    frames: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size % 2:
            raise InvalidInputError(f"parameter size: {self.size} must be even (H.264 for browsers needs even frame sizes)")
        _int("frame_iterations", self.frame_iterations, 1, 100_000)
        _number("tolerance", self.tolerance, optional=True)
        _choice("temporal", self.temporal, (True, False))
        _number("temporal_weight", self.temporal_weight, optional=True)
        if self.temporal_weight is not None:
            object.__setattr__(self, "temporal_weight", float(self.temporal_weight))
        if self.tolerance is not None:
            object.__setattr__(self, "tolerance", float(self.tolerance))
        offsets = self.long_term
        if (
            not isinstance(offsets, tuple)
            or not offsets
            or any(isinstance(j, bool) or not isinstance(j, int) or not 1 <= j <= MAX_OFFSET for j in offsets)
            or list(offsets) != sorted(set(offsets))
            or offsets[0] != 1
        ):
            raise InvalidInputError(
                f"parameter long_term: {offsets!r}: expected increasing frame offsets from 1 to {MAX_OFFSET}, "
                "starting at 1 (e.g. [1, 2, 4])"
            )
        _choice("flow", self.flow, FLOW_METHODS)
        _number("scene_cut", self.scene_cut)
        if self.scene_cut >= 1:
            raise InvalidInputError(f"parameter scene_cut: {self.scene_cut} must be below 1 (0 disables cut detection)")
        object.__setattr__(self, "scene_cut", float(self.scene_cut))
        _int("passes", self.passes, 1, 20)
        _int("start", self.start, 0)
        if self.frames is not None:
            _int("frames", self.frames, 1)

    def resolved_temporal_weight(self, weights_source: str) -> float:
        if self.temporal_weight is not None:
            return self.temporal_weight
        return DEFAULT_TEMPORAL_WEIGHTS.get(weights_source, DEFAULT_TEMPORAL_WEIGHTS["caffe"])

    def frame_params(self, *, first: bool) -> GatysParams:
        """The plain Gatys parameters of one frame: the first of a shot gets the full budget."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(GatysParams)}
        if first:
            return GatysParams(**shared)
        later = {"iterations": self.frame_iterations} | ({"init": "image"} if self.temporal else {})
        return GatysParams(**(shared | later))


METHOD_PARAMS[VideoGatysParams.method] = VideoGatysParams

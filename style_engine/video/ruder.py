"""Temporally consistent video stylization (Ruder et al. 2016), frame by frame along optical flow.

The loop (:func:`stylize_frames`) is independent of how one frame is stylized: it hands a
:data:`FrameStylizer` the frame and the earlier outputs of the same shot, warped onto it with
their trust masks (:class:`Guide`, closest first). :class:`RuderGatys` optimizes each frame from
the warped previous result with a masked temporal loss; a feed-forward network would instead
blends its output with ``guides[0]`` where the mask trusts the flow, through the same seam
(:class:`style_engine.video.itn.StabilizedITN`).

Frames and outputs are uint8 RGB arrays (H, W, 3). Outputs pass through uint8 before they feed
the next frame, exactly as a checkpointed frame does, so that a run resumed from stored frames
produces the same bytes as one that never stopped. Nothing here reads or writes files: the
caller decodes, checkpoints and encodes (tasks/).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from style_engine.device import resolve_device
from style_engine.errors import InvalidInputError
from style_engine.video.flow import check_flow_method, consistency_mask, flow_pair, warp
from style_engine.gatys.render import ExtraTerm, StepCallback, StyleTargetCache, stylize
from style_engine.images import image_to_tensor, resize_long_side, tensor_to_image
from style_engine.video.params import VideoGatysParams, VideoParams

PHOTOMETRIC_TOLERANCE = 0.1  # on [0, 1]: a warped pixel this close to the frame "matches" (cut detection)


@dataclass(frozen=True)
class Guide:
    """An earlier output of the shot, warped onto the current frame, and how much to trust each pixel.

    ``weight`` is Ruder's long-term mask: the consistency mask of this offset minus what closer
    offsets already cover (clamped at 0), so each pixel follows the closest frame that saw it.
    """

    offset: int
    warped: torch.Tensor  # (1, 3, H, W) on [0, 1]
    weight: torch.Tensor  # (1, 1, H, W) on [0, 1]


@dataclass(frozen=True)
class FrameOutput:
    """What a frame stylizer returns: the frame, its final losses and the evaluations it spent."""

    image: np.ndarray
    losses: dict[str, float] = field(default_factory=dict)
    iterations: int = 0


FrameStylizer = Callable[[np.ndarray, Sequence[Guide]], FrameOutput]


class ClipStylizer(Protocol):
    """A frame stylizer that can also say how it ties frames together (for the Run's metrics)."""

    def __call__(self, frame: np.ndarray, guides: Sequence[Guide]) -> FrameOutput: ...

    def settings(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FrameReport:
    """Per-frame numbers for progress and for the Run's metrics."""

    index: int  # within the processed range, from 0
    total: int | None
    seconds: float  # stylization
    flow_seconds: float
    iterations: int
    losses: dict[str, float]
    scene_cut: bool  # the temporal chain restarted at this frame
    warping_error: float | None  # against the previous output (None at a shot's first frame)
    resumed: bool  # the output came from a checkpoint, not from the stylizer


FrameCallback = Callable[[FrameReport], None]


def stylize_frames(
    frames: Iterable[np.ndarray],
    stylize_frame: FrameStylizer,
    *,
    long_term: Sequence[int] = (1, 2, 4),
    temporal: bool = True,
    flow_method: str = "dis",
    scene_cut: float = 0.5,
    size: int | None = None,
    shot_starts: Collection[int] = (),
    finished: Sequence[np.ndarray] = (),
    total: int | None = None,
    on_frame: FrameCallback | None = None,
) -> Iterator[tuple[np.ndarray, FrameReport]]:
    """Stylize ``frames`` in order, yielding each output with its report as soon as it is done.

    ``shot_starts`` (indices into ``frames``, from a planning pass such as
    :func:`style_engine.video.shots.find_cuts`) restart the chain exactly as frame 0 does, without
    looking at the flow; the loop's own cut detection (``scene_cut``) still adds any it sees.
    ``finished`` are outputs of the first frames from an earlier, interrupted run: they are not
    recomputed, only fed to the chain (and measured). With ``temporal`` False only the closest
    earlier frame is warped (for the warping error and the cut detection; its time is reported),
    and the stylizer is expected to ignore it except to know the shot goes on: empty guides
    always mean the first frame of a shot. ``size`` scales frames to that long side
    first (a no-op for frames decoded at the size already).
    """
    check_flow_method(flow_method)
    chain = _Chain(tuple(long_term) if temporal else (1,), flow_method, scene_cut)
    for index, frame in enumerate(frames):
        frame = fit_frame(frame, size) if size is not None else frame
        started = time.perf_counter()
        guides, cut = chain.advance(frame, restart=index in shot_starts)
        flow_seconds = time.perf_counter() - started
        resumed = index < len(finished)
        if resumed:
            out = FrameOutput(np.ascontiguousarray(finished[index], dtype=np.uint8))
            if out.image.shape != frame.shape:
                raise InvalidInputError(
                    f"checkpointed frame {index}: {out.image.shape[1]}x{out.image.shape[0]}, "
                    f"but the frame is {frame.shape[1]}x{frame.shape[0]}"
                )
        else:
            out = stylize_frame(frame, guides)
        seconds = time.perf_counter() - started - flow_seconds
        error = chain.finish(out.image)
        report = FrameReport(index, total, seconds, flow_seconds, out.iterations, out.losses, cut, error, resumed)
        if on_frame is not None:
            on_frame(report)
        yield out.image, report


class _Chain:
    """The current shot's recent frames and outputs, and the guides they give the next frame."""

    def __init__(self, offsets: tuple[int, ...], flow_method: str, scene_cut: float) -> None:
        self.offsets = offsets
        self.flow_method = flow_method
        self.scene_cut = scene_cut
        self.frames: list[np.ndarray] = []  # most recent last, at most max(offsets)
        self.outputs: list[np.ndarray] = []
        self.nearest: Guide | None = None

    def advance(self, frame: np.ndarray, restart: bool = False) -> tuple[list[Guide], bool]:
        """Guides for ``frame`` (closest first) and whether a cut restarted the chain here
        (``restart``: a known shot start; otherwise one the flow reveals)."""
        if self.frames and self.frames[-1].shape != frame.shape:
            raise InvalidInputError(f"frame sizes change within the clip ({self.frames[-1].shape} -> {frame.shape})")
        guides: list[Guide] = []
        covered = None
        cut = restart and bool(self.frames)
        for j in () if cut else self.offsets:
            if j > len(self.frames):
                break
            flow, back = flow_pair(frame, self.frames[-j], self.flow_method)
            mask = torch.from_numpy(consistency_mask(flow, back))[None, None]
            if j == 1 and self.scene_cut > 0 and photometric_similarity(frame, self.frames[-1], flow, mask) < self.scene_cut:
                cut = True
                break
            previous = image_to_tensor(Image.fromarray(self.outputs[-j]))
            weight = mask if covered is None else (mask - covered).clamp(min=0)
            covered = mask if covered is None else torch.maximum(covered, mask)
            guides.append(Guide(j, warp(previous, flow), weight))
        if cut:
            self.frames, self.outputs, guides = [], [], []
        self.frames.append(frame)
        self.nearest = guides[0] if guides else None
        return guides, cut

    def finish(self, output: np.ndarray) -> float | None:
        """Record the frame's output; return its warping error against the previous output."""
        self.outputs.append(output)
        depth = max(self.offsets)
        del self.frames[:-depth], self.outputs[:-depth]
        if self.nearest is None:
            return None
        return warping_error(image_to_tensor(Image.fromarray(output)), self.nearest.warped, self.nearest.weight)


def photometric_similarity(frame: np.ndarray, previous: np.ndarray, flow: np.ndarray, mask: torch.Tensor) -> float:
    """Share of pixels whose flow is consistent and whose warped previous frame matches: low at a cut."""
    current = image_to_tensor(Image.fromarray(frame))
    aligned = warp(image_to_tensor(Image.fromarray(previous)), flow)
    matches = ((aligned - current).abs().mean(dim=1, keepdim=True) < PHOTOMETRIC_TOLERANCE).float()
    return float((matches * (mask >= 0.5)).mean())


def pair_similarity(frame: np.ndarray, previous: np.ndarray, flow_method: str = "dis") -> float:
    """:func:`photometric_similarity` of two frames, with their flow computed here (planning, tests)."""
    flow, back = flow_pair(frame, previous, flow_method)
    return photometric_similarity(frame, previous, flow, torch.from_numpy(consistency_mask(flow, back))[None, None])


def warping_error(output: torch.Tensor, warped_previous: torch.Tensor, mask: torch.Tensor) -> float:
    """Lai et al. (2018): masked mean squared difference between output t and warped output t-1.

    On [0, 1] pixels, averaged over channels and over the pixels the mask trusts (mask-weighted).
    The flow and mask come from the *input* frames, so every method is measured alike.
    """
    weight = mask.sum() * output.shape[1]
    if weight <= 0:
        return 0.0
    return float((mask * (output - warped_previous) ** 2).sum() / weight)


def temporal_loss(x: torch.Tensor, guides: Sequence[Guide]) -> torch.Tensor:
    """Ruder's (long-term) temporal loss: sum over guides of mean(weight * (x - warped)^2)."""
    return sum((guide.weight * (x - guide.warped) ** 2).mean() for guide in guides)


class RuderGatys:
    """The per-frame stylizer of Ruder et al.: Gatys from the warped previous result, plus the temporal loss.

    The first frame of a shot (no guides) gets the full ``iterations`` from ``init``; later frames
    get ``frame_iterations`` and stop early at ``tolerance``. Style targets are computed once and
    reused by every frame through the cache.
    """

    def __init__(
        self,
        styles: Sequence[Image.Image],
        params: VideoGatysParams,
        *,
        style_weights: Sequence[float] | None = None,
        device: str | torch.device = "cpu",
        weights: str = "caffe",
        cache: StyleTargetCache | None = None,
        style_keys: Sequence[str] | None = None,
        on_step: StepCallback | None = None,
    ) -> None:
        self.styles = list(styles)
        self.params = params
        self.style_weights = style_weights
        self.device = resolve_device(device)
        self.weights = weights
        self.cache = StyleTargetCache() if cache is None else cache
        self.style_keys = style_keys
        self.on_step = on_step

    def settings(self) -> dict[str, Any]:
        """The temporal loss's weight as applied (0 for the per-frame baseline)."""
        return {"temporal_weight": self.params.resolved_temporal_weight(self.weights) if self.params.temporal else 0.0}

    def __call__(self, frame: np.ndarray, guides: Sequence[Guide]) -> FrameOutput:
        params = self.params.frame_params(first=not guides)
        content = Image.fromarray(frame)
        extra = None
        init = None
        if guides and self.params.temporal:
            weight = self.params.resolved_temporal_weight(self.weights)
            moved = [Guide(g.offset, g.warped.to(self.device), g.weight.to(self.device)) for g in guides]
            extra = ExtraTerm("temporal", lambda x: weight * temporal_loss(x, moved))
            init = tensor_to_image(guides[0].warped)
        result = stylize(
            content,
            self.styles,
            params,
            style_weights=self.style_weights,
            device=self.device,
            weights=self.weights,
            cache=self.cache,
            style_keys=self.style_keys,
            on_step=self.on_step,
            init_image=init,
            extra_term=extra,
            tolerance=self.params.tolerance if guides and self.params.temporal else None,
        )
        losses = dict(result.losses)
        style_weight = params.loss_weights(result.weights_source)["style_weight"]
        if style_weight > 0:
            losses["style_dist"] = losses["style"] / style_weight
        return FrameOutput(np.asarray(result.image, dtype=np.uint8), losses, result.iterations)


def fit_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """A frame scaled so its long side is ``size`` (what the stylizer works at), as uint8 RGB."""
    return np.asarray(resize_long_side(Image.fromarray(frame), size), dtype=np.uint8)


def refine_passes(
    frames: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    stylize_frame: FrameStylizer,
    *,
    passes: int,
    shot_starts: set[int],
    flow_method: str = "dis",
    on_frame: FrameCallback | None = None,
) -> list[np.ndarray]:
    """Ruder's multi-pass, simplified: passes 2..``passes`` sweep the clip backward, forward, ...

    Each frame restarts from its own result blended with the neighbour just refined in this
    pass (warped onto it, mask-weighted: c * warped + (1 - c) * own), and is held to that blend
    by the temporal loss. Information then flows both ways, so the start of a shot no longer
    differs from its end. ``shot_starts`` are the frames where a cut restarted the chain: no
    frame is blended across them. Needs the whole clip in memory (checkpoints cover pass 1).
    """
    current = [np.ascontiguousarray(o, dtype=np.uint8) for o in outputs]
    for number in range(2, passes + 1):
        backward = number % 2 == 0
        order = range(len(frames) - 1, -1, -1) if backward else range(len(frames))
        for position, index in enumerate(order):
            neighbour = index + 1 if backward else index - 1
            crosses = (index + 1 if backward else index) in shot_starts
            if position == 0 or crosses:
                continue
            started = time.perf_counter()
            flow, back = flow_pair(frames[index], frames[neighbour], flow_method)
            mask = torch.from_numpy(consistency_mask(flow, back))[None, None]
            warped = warp(image_to_tensor(Image.fromarray(current[neighbour])), flow)
            own = image_to_tensor(Image.fromarray(current[index]))
            flow_seconds = time.perf_counter() - started
            out = stylize_frame(frames[index], [Guide(1, mask * warped + (1 - mask) * own, mask)])
            current[index] = out.image
            if on_frame is not None:
                seconds = time.perf_counter() - started - flow_seconds
                on_frame(FrameReport(index, len(frames), seconds, flow_seconds, out.iterations, out.losses, False,
                                     None, False))
    return current


def measure_clip(
    frames: Sequence[np.ndarray], outputs: Sequence[np.ndarray], shot_starts: set[int], flow_method: str = "dis"
) -> list[float | None]:
    """The warping error of each output against the previous one (None at a shot's first frame)."""
    errors: list[float | None] = [None]
    for index in range(1, len(frames)):
        if index in shot_starts:
            errors.append(None)
            continue
        flow, back = flow_pair(frames[index], frames[index - 1], flow_method)
        mask = torch.from_numpy(consistency_mask(flow, back))[None, None]
        warped = warp(image_to_tensor(Image.fromarray(outputs[index - 1])), flow)
        errors.append(warping_error(image_to_tensor(Image.fromarray(outputs[index])), warped, mask))
    return errors


def summarize(reports: Sequence[FrameReport]) -> dict[str, float]:
    """The clip's metrics: mean warping error, s/frame, flow's share, cuts, and the mean style
    distance where the stylizer reports one (Gatys does; a network has no loss to report)."""
    errors = [r.warping_error for r in reports if r.warping_error is not None]
    styles = [r.losses["style_dist"] for r in reports if "style_dist" in r.losses]
    computed = [r for r in reports if not r.resumed]
    compute = sum(r.seconds + r.flow_seconds for r in computed)
    return {
        "frames": float(len(reports)),
        "warping_error": float(np.mean(errors)) if errors else 0.0,
        **({"style_dist": float(np.mean(styles))} if styles else {}),
        "seconds_per_frame": compute / len(computed) if computed else 0.0,
        "flow_share": sum(r.flow_seconds for r in computed) / compute if compute > 0 else 0.0,
        "iterations_per_frame": float(np.mean([r.iterations for r in computed])) if computed else 0.0,
        "scene_cuts": float(sum(r.scene_cut for r in reports)),
    }


def stylize_clip(
    frames: Iterable[np.ndarray],
    stylize_frame: FrameStylizer,
    params: VideoParams,
    *,
    shot_starts: Collection[int] = (),
    finished: Sequence[np.ndarray] = (),
    total: int | None = None,
    on_frame: FrameCallback | None = None,
) -> Iterator[tuple[np.ndarray, FrameReport]]:
    """:func:`stylize_frames` with the frame-loop settings of a video method's ``params``."""
    return stylize_frames(
        frames,
        stylize_frame,
        long_term=params.long_term,
        temporal=params.temporal,
        flow_method=params.flow,
        scene_cut=params.scene_cut,
        size=params.size,
        shot_starts=shot_starts,
        finished=finished,
        total=total,
        on_frame=on_frame,
    )


def ruder_gatys(
    frames: Iterable[np.ndarray],
    styles: Sequence[Image.Image],
    params: VideoGatysParams,
    *,
    shot_starts: Collection[int] = (),
    finished: Sequence[np.ndarray] = (),
    total: int | None = None,
    on_frame: FrameCallback | None = None,
    **engine: object,
) -> Iterator[tuple[np.ndarray, FrameReport]]:
    """Video Gatys with ``params`` (per-frame when ``params.temporal`` is False).

    ``engine`` passes through to :class:`RuderGatys` (device, weights, cache, style keys, on_step).
    """
    stylizer = RuderGatys(styles, params, **engine)  # type: ignore[arg-type]
    return stylize_clip(frames, stylizer, params, shot_starts=shot_starts, finished=finished, total=total,
                        on_frame=on_frame)

"""One clip through the video engine: decode, stylize frame by frame, checkpoint, encode.

Shared by `atelier stylize-video` (no catalog: checkpoints are skipped) and by catalog jobs
(checkpoints go to the store, so a killed run resumes at its last finished frame). The engine
sees frames only; files, the store and the catalog stay here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from style_engine.params import parse_params
from style_engine.video import FrameCallback, FrameReport, RuderGatys, measure_clip, refine_passes, ruder_gatys, summarize
from style_engine.video_params import VideoGatysParams
from style_engine.flow import flow_settings
from tasks.video_io import VideoInfo, check_range, poster, preview_webp, probe_video, read_frames, write_mp4

VIDEO_METHODS = frozenset({VideoGatysParams.method})
Checkpointer = Callable[[np.ndarray, FrameReport], None]


@dataclass(frozen=True)
class Finished:
    """A frame done by an earlier attempt, and the losses it was recorded with."""

    image: np.ndarray
    losses: dict[str, float]


@dataclass
class ClipResult:
    """What a rendered clip produced (the MP4 itself is at the caller's path)."""

    info: VideoInfo
    frames: int
    fps: float
    width: int
    height: int
    metrics: dict[str, Any]
    preview: bytes
    poster: Image.Image


def video_params(method: str, params: Any) -> VideoGatysParams:
    """Validated parameters of a video method (InvalidInputError otherwise)."""
    parsed = parse_params(method, params)
    assert isinstance(parsed, VideoGatysParams)
    return parsed


def render_clip(
    source: str | Path,
    target: str | Path,
    styles: Sequence[Image.Image],
    params: VideoGatysParams,
    *,
    label: str | None = None,
    finished: Sequence[Finished] = (),
    checkpoint: Checkpointer | None = None,
    on_frame: FrameCallback | None = None,
    **engine: Any,
) -> ClipResult:
    """Stylize ``source`` into the MP4 ``target`` (with its audio), resuming after ``finished``.

    ``checkpoint`` gets each newly finished frame before the next one starts. ``engine`` passes
    through to the engine (device, weights, cache, style_keys, style_weights, on_step).
    """
    name = label or str(source)
    info = probe_video(source, name=name)
    count = check_range(info, params.start, params.frames, name)
    frames = read_frames(source, info, size=params.size, start=params.start, count=count, name=name)
    stored_losses = [f.losses for f in finished]
    reports: list[FrameReport] = []
    multipass = params.passes > 1 and params.temporal
    kept: list[np.ndarray] = []  # the input frames, when the later passes need them again

    def remembered(source_frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in source_frames:
            kept.append(frame)
            yield frame

    def first_pass() -> Iterator[np.ndarray]:
        outputs = ruder_gatys(remembered(frames) if multipass else frames, styles, params,
                              finished=[f.image for f in finished], total=count, **engine)
        for image, report in outputs:
            if report.resumed:
                report = dataclasses.replace(report, losses=stored_losses[report.index])
            elif checkpoint is not None:
                checkpoint(image, report)
            reports.append(report)
            if on_frame is not None:
                on_frame(report)
            yield image

    result: Iterable[np.ndarray] = first_pass()
    if multipass:
        # Later passes need the whole clip; only pass 1 is checkpointed (the rest reruns alike).
        outputs = list(result)
        cuts = {r.index for r in reports if r.scene_cut}
        result = refine_passes(kept, outputs, RuderGatys(styles, params, **engine), passes=params.passes,
                               shot_starts=cuts, flow_method=params.flow, on_frame=on_frame)
        errors = measure_clip(kept, result, cuts, params.flow)
        reports = [dataclasses.replace(r, warping_error=e) for r, e in zip(reports, errors)]
    first: list[np.ndarray] = []
    keep = max(1, int(3 * info.fps))  # the preview's frames

    def previewed(images: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for image in images:
            if len(first) < keep:
                first.append(image)
            yield image

    start_seconds = params.start / info.fps
    written = write_mp4(previewed(result), target, info.fps, audio_from=source if info.has_audio else None,
                        audio_start=start_seconds, audio_duration=count / info.fps)
    height, width = first[0].shape[:2]
    metrics: dict[str, Any] = {
        **summarize(reports),
        "frames_resumed": sum(r.resumed for r in reports),
        "fps": info.fps,
        "flow_method": params.flow,
        "flow_settings": flow_settings(params.flow),
        "temporal_weight": params.resolved_temporal_weight(str(engine.get("weights", "caffe"))) if params.temporal else 0.0,
        "source": {"width": info.width, "height": info.height, "frames": info.frames, "codec": info.codec},
        "notes": list(info.notes),
    }
    return ClipResult(info, written, info.fps, width, height, metrics, preview_webp(first, info.fps), poster(first[0]))

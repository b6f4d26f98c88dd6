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
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from style_engine.errors import InvalidInputError
from style_engine.flow import flow_settings
from style_engine.params import parse_params
from style_engine.video import ClipStylizer, FrameCallback, FrameReport, measure_clip, refine_passes, stylize_clip, summarize
from style_engine.video_params import VideoGatysParams, VideoITNParams, VideoParams
from tasks.video_io import VideoInfo, check_range, poster, preview_webp, probe_video, read_frames, write_mp4

if TYPE_CHECKING:
    from tasks.workshop import Workshop

VIDEO_METHODS = frozenset({VideoGatysParams.method, VideoITNParams.method})
Checkpointer = Callable[[np.ndarray, FrameReport], None]


@dataclass(frozen=True)
class Finished:
    """A frame done by an earlier attempt, and the losses it was recorded with."""

    image: np.ndarray
    losses: dict[str, float]


LOSSES_KEY = "atelier:losses"


def frame_png(image: np.ndarray, losses: dict[str, float], **info: str) -> bytes:
    """A finished frame as a checkpoint: lossless PNG (a resume continues from the very same
    pixels), its losses and ``info`` in text chunks."""
    from PIL import Image

    from style_engine.images import png_bytes

    return png_bytes(Image.fromarray(image), {**info, LOSSES_KEY: losses})


def read_frame_png(data: bytes) -> Finished:
    """A checkpoint written by :func:`frame_png`."""
    import io
    import json

    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        return Finished(np.asarray(picture.convert("RGB")), json.loads(picture.info.get(LOSSES_KEY, "{}")))


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


def video_params(method: str, params: Any) -> VideoParams:
    """Validated parameters of a video method (InvalidInputError otherwise)."""
    parsed = parse_params(method, params)
    assert isinstance(parsed, (VideoGatysParams, VideoITNParams))
    return parsed


def itn_stylizer(
    workshop: Workshop, params: VideoITNParams, styles: Sequence[tuple[str, str]] = ()
) -> tuple[ClipStylizer, dict[str, Any]]:
    """The fast-video stylizer of ``params.model``, run the fastest way on the workshop's device,
    and the model's identity for the Run.

    An unknown model is an InvalidInputError naming it. ``styles`` (label, sha256) are the styles
    the request names: each must be one the model was trained on, so that a job or a command that
    says "Starry Night" never quietly paints with another network.
    """
    from style_engine.video_itn import StabilizedITN
    from tasks.itn import fast_inference, load_model

    info, net = load_model(workshop, params.model)
    trained_on = {style["sha256"] for style in info.metrics.get("styles", [])}
    for label, sha256 in styles:
        if sha256 not in trained_on:
            raise InvalidInputError(f"{label}: model {info.name!r} was trained on another style (image {info.style_id}); "
                                    "the model carries its style")
    stylizer = StabilizedITN(fast_inference(workshop, info.sha256, net), stabilize=params.stabilize,
                             blend=params.blend, device=workshop.device)
    return stylizer, {"model_id": info.id, "model_name": info.name, "model_sha256": info.sha256}


def render_clip(
    source: str | Path,
    target: str | Path,
    stylizer: ClipStylizer,
    params: VideoParams,
    *,
    label: str | None = None,
    finished: Sequence[Finished] = (),
    checkpoint: Checkpointer | None = None,
    on_frame: FrameCallback | None = None,
) -> ClipResult:
    """Stylize ``source`` with ``stylizer`` into the MP4 ``target`` (with its audio), resuming after ``finished``.

    ``checkpoint`` gets each newly finished frame before the next one starts.
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
        outputs = stylize_clip(remembered(frames) if multipass else frames, stylizer, params,
                               finished=[f.image for f in finished], total=count)
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
        result = refine_passes(kept, outputs, stylizer, passes=params.passes,
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
        **stylizer.settings(),
        "source": {"width": info.width, "height": info.height, "frames": info.frames, "codec": info.codec},
        "notes": list(info.notes),
    }
    return ClipResult(info, written, info.fps, width, height, metrics, preview_webp(first, info.fps), poster(first[0]))

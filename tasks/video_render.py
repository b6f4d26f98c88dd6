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
from style_engine.video.flow import flow_settings
from style_engine.params import parse_params
from style_engine.video.ruder import ClipStylizer, FrameCallback, FrameReport, measure_clip, refine_passes, stylize_clip, summarize
from style_engine.video.params import VideoGatysParams, VideoITNParams, VideoParams
from tasks.video_io import VideoInfo, check_range, poster, preview_webp, probe_video, read_frames, write_mp4

if TYPE_CHECKING:
    from style_engine.video.shots import Segment
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
    from style_engine.video.itn import StabilizedITN
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


def encode_clip(
    images: Iterable[np.ndarray], target: str | Path, source: str | Path, info: VideoInfo, start: int, count: int
) -> Encoded:
    """Write ``images`` (frames ``start .. start+count-1`` of ``source``) as the MP4 ``target`` with the
    source's audio of that range, keeping the frames the preview and the poster need."""
    first: list[np.ndarray] = []
    keep = max(1, int(3 * info.fps))  # the preview's frames

    def previewed(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for image in frames:
            if len(first) < keep:
                first.append(image)
            yield image

    written = write_mp4(previewed(images), target, info.fps, audio_from=source if info.has_audio else None,
                        audio_start=start / info.fps, audio_duration=count / info.fps)
    if not first:
        raise InvalidInputError(f"{target}: no frames to encode")
    return Encoded(written, first[0].shape[1], first[0].shape[0], preview_webp(first, info.fps), poster(first[0]))


@dataclass(frozen=True)
class Encoded:
    """An MP4 just written: its frame count and size, and its preview and poster."""

    frames: int
    width: int
    height: int
    preview: bytes
    poster: Image.Image

    def result(self, info: VideoInfo, metrics: dict[str, Any]) -> ClipResult:
        return ClipResult(info, self.frames, info.fps, self.width, self.height, metrics, self.preview, self.poster)


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
    encoded = encode_clip(result, target, source, info, params.start, count)
    return encoded.result(info, clip_metrics(reports, info, params, stylizer))


def clip_metrics(reports: Sequence[FrameReport], info: VideoInfo, params: VideoParams, stylizer: ClipStylizer
                 ) -> dict[str, Any]:
    """The Run's metrics of rendered frames: the engine's summary and how the frames were tied together."""
    return {
        **summarize(reports),
        "frames_resumed": sum(r.resumed for r in reports),
        "fps": info.fps,
        "flow_method": params.flow,
        "flow_settings": flow_settings(params.flow),
        **stylizer.settings(),
        "source": {"width": info.width, "height": info.height, "frames": info.frames, "codec": info.codec},
        "notes": list(info.notes),
    }


@dataclass
class SegmentResult:
    """What a rendered segment produced: its frames are the checkpoints, this is the rest."""

    frames: int
    metrics: dict[str, Any]
    poster: Image.Image


def render_segment(
    source: str | Path,
    stylizer: ClipStylizer,
    params: VideoParams,
    segment: Segment,
    shot_starts: Sequence[int],
    *,
    label: str | None = None,
    finished: Sequence[Finished] = (),
    previous: Sequence[np.ndarray] = (),
    checkpoint: Checkpointer,
    on_frame: FrameCallback | None = None,
) -> SegmentResult:
    """Stylize the frames ``segment`` owns (a piece of a film, db.segments), resuming after ``finished``.

    Only its context and owned frames are decoded. ``previous``: the segment before's outputs of
    the context frames (the hand-over; style_engine.video.shots.stylize_segment). ``checkpoint`` gets each newly finished frame
    (its report's index counted from the film's first frame): the checkpoints are the segment's
    output, from which the film is assembled.
    """
    from style_engine.video.shots import stylize_segment

    name = label or str(source)
    info = probe_video(source, name=name)
    count = check_range(info, params.start, params.frames, name)
    if segment.end > count:
        raise InvalidInputError(f"{name}: segment {segment.index} ends at frame {segment.end}, the job has {count}")
    frames = read_frames(source, info, size=params.size, start=params.start + segment.context_start,
                         count=segment.end - segment.context_start, name=name)
    reports: list[FrameReport] = []
    first: np.ndarray | None = None
    outputs = stylize_segment(frames, stylizer, params, segment, shot_starts, finished=[f.image for f in finished],
                              previous=previous, total=count)
    for image, report in outputs:
        if report.resumed:
            report = dataclasses.replace(report, losses=finished[report.index - segment.start].losses)
        else:
            checkpoint(image, report)
        reports.append(report)
        first = image if first is None else first
        if on_frame is not None:
            on_frame(report)
    assert first is not None, "a segment owns at least one frame"
    metrics = {**clip_metrics(reports, info, params, stylizer), "segment": segment.to_dict()}
    return SegmentResult(len(reports), metrics, poster(first))

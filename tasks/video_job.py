"""A catalog job on a video: fetch the clip, render it with per-frame checkpoints, store the results.

Called by tasks.job.perform_job for video methods, inside the same recorded attempt (Run), so
claims, leases, failures and retries behave exactly as for pictures. Finished frames are
checkpointed to the store as they are made; a later attempt (after a kill, a crash or a
transient error) starts at the first frame without one, and produces the same bytes.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from db.checkpoints import finished_frames, record_checkpoint
from db.jobs import JobSpec
from db.models import ArtifactKind
from db.runs import ArtifactRecord
from db.segments import film_params
from style_engine.images import png_bytes
from tasks.job import artifact_record, lease_keeper, phase
from tasks.progress import note_share_done
from tasks.stopping import raise_if_stopped
from tasks.workshop import Workshop

if TYPE_CHECKING:
    from style_engine.video.ruder import ClipStylizer

def run_video(
    workshop: Workshop, spec: JobSpec, run_id: int, timings: dict[str, float],
    logger: logging.Logger | logging.LoggerAdapter,
) -> tuple[list[ArtifactRecord], dict[str, Any]]:
    """Render job ``spec``'s clip; return its artifacts (MP4, poster, preview) and metrics.

    A segment of a film (db.segments) renders only its frames: they stay as checkpoints, from
    which the film is assembled, and its artifact is its poster.
    """
    from tasks.video_render import render_clip, render_segment, video_params

    method_params, segment, shot_starts = film_params(spec.params)
    params = video_params(spec.method, method_params)
    label = f"video {spec.content.id} ({spec.content.uri})"
    keep_lease = lease_keeper(workshop, spec.id)

    def on_step(*_: Any) -> None:
        raise_if_stopped()  # Ctrl-C, SIGTERM or a cancelled flow run: finished frames stay checkpointed
        keep_lease()

    with phase(timings, "load"):
        source = workshop.inputs.fetch_path(spec.content.uri, spec.content.sha256)
        stylizer, identity = clip_stylizer(workshop, spec, params, on_step)
        finished = load_finished(workshop, spec.id)
    if finished:
        logger.info("job %d: resuming after %d checkpointed frames", spec.id, len(finished))

    first, frames = (0, None) if segment is None else (segment["start"], segment["end"] - segment["start"])

    def checkpoint(image: np.ndarray, report: Any) -> None:
        save_checkpoint(workshop, spec, run_id, image, report.index - first, report.losses)
        on_step()  # a network's frame has no optimizer steps: stop and keep the lease between frames

    def on_frame(report: Any) -> None:
        if frames or report.total:
            note_share_done(spec.id, (report.index - first + 1) / (frames or report.total))
        error = "" if report.warping_error is None else f", warping error {report.warping_error:.2e}"
        cut = ", scene cut" if report.scene_cut else ""
        logger.info("job %d: frame %d/%s in %.1f s (%d evaluations%s%s)%s", spec.id, report.index + 1, report.total,
                    report.seconds + report.flow_seconds, report.iterations, error, cut,
                    " (from checkpoint)" if report.resumed else "")

    if segment is not None:
        from style_engine.video.shots import Segment
        from tasks.film import needs_hand_over, previous_outputs

        piece = Segment.from_dict(segment)
        with phase(timings, "load"):
            previous = (previous_outputs(workshop, spec.parent_job_id, piece)
                        if needs_hand_over(params, piece) and not finished and spec.parent_job_id else [])
        with phase(timings, "compute"):
            result = render_segment(source, stylizer, params, piece, shot_starts, label=label, finished=finished,
                                    previous=previous, checkpoint=checkpoint, on_frame=on_frame)
        with phase(timings, "upload"):
            stored = workshop.store.put_bytes(png_bytes(result.poster), suffix=".png", content_type="image/png")
        thumbnail = artifact_record(ArtifactKind.THUMBNAIL, stored, width=result.poster.width,
                                    height=result.poster.height)
        return [thumbnail], {**result.metrics, **identity}
    with tempfile.TemporaryDirectory(prefix="atelier-video-") as folder:
        target = Path(folder) / "out.mp4"
        with phase(timings, "compute"):
            clip = render_clip(source, target, stylizer, params, label=label, finished=finished,
                               checkpoint=checkpoint, on_frame=on_frame)
        with phase(timings, "upload"):
            artifacts = upload_video(workshop, target, clip)
    return artifacts, {**clip.metrics, **identity}


def clip_stylizer(
    workshop: Workshop, spec: JobSpec, params: Any, on_step: Callable[..., None]
) -> tuple[ClipStylizer, dict[str, Any]]:
    """The job's frame stylizer and what identifies it beyond the parameters: Ruder's Gatys with
    the job's styles, or the trained network its ``model`` names (the model carries the style)."""
    from style_engine.images import load_image
    from style_engine.video.ruder import RuderGatys
    from style_engine.video.params import VideoITNParams
    from tasks.video_render import itn_stylizer

    if isinstance(params, VideoITNParams):
        return itn_stylizer(workshop, params, [(f"style image {ref.id}", ref.sha256) for ref in spec.styles])
    styles = [
        load_image(workshop.inputs.fetch(ref.uri, ref.sha256), name=f"style image {ref.id} ({ref.uri})",
                   max_pixels=workshop.config.max_image_pixels)
        for ref in spec.styles
    ]
    stylizer = RuderGatys(styles, params, style_weights=list(spec.style_weights), device=workshop.device,
                          weights=workshop.config.weights, cache=workshop.style_targets,
                          style_keys=[ref.sha256 for ref in spec.styles], on_step=on_step)
    return stylizer, {}


def load_finished(workshop: Workshop, job_id: int) -> list[Any]:
    """The frames earlier attempts finished, decoded, with the losses stored beside them."""
    from tasks.video_render import read_frame_png

    return [read_frame_png(workshop.store.get_bytes(checkpoint.uri, sha256=checkpoint.sha256))
            for checkpoint in finished_frames(workshop.catalog, job_id)]


def save_checkpoint(
    workshop: Workshop, spec: JobSpec, run_id: int, image: np.ndarray, index: int, losses: dict[str, float]
) -> None:
    """Store one finished frame (lossless PNG, so a resume continues from the very same pixels)."""
    from tasks.video_render import frame_png

    data = frame_png(image, losses, **{"atelier:job": str(spec.id), "atelier:frame": str(index)})
    stored = workshop.store.put_bytes(data, suffix=".png", content_type="image/png")
    record_checkpoint(workshop.catalog, job_id=spec.id, run_id=run_id, index=index, uri=stored.uri,
                      sha256=stored.sha256, size=stored.size, content_type=stored.content_type,
                      width=image.shape[1], height=image.shape[0])


def upload_video(workshop: Workshop, target: Path, clip: Any) -> list[ArtifactRecord]:
    """The MP4 is the job's output (the artwork), the poster its thumbnail, and the short animated
    WebP preview is the ``video`` artifact (galleries show it where an MP4 player is too heavy)."""
    mp4 = workshop.store.put_file(target, suffix=".mp4", content_type="video/mp4")
    poster = workshop.store.put_bytes(png_bytes(clip.poster), suffix=".png", content_type="image/png")
    preview = workshop.store.put_bytes(clip.preview, suffix=".webp", content_type="image/webp")
    return [
        artifact_record(ArtifactKind.OUTPUT, mp4, width=clip.width, height=clip.height, frames=clip.frames, fps=clip.fps),
        artifact_record(ArtifactKind.THUMBNAIL, poster, width=clip.poster.width, height=clip.poster.height),
        artifact_record(ArtifactKind.VIDEO, preview),
    ]

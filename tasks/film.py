"""A film across the fleet: a long video job planned into segments, and assembled once they are done.

The worker that claims a video job first looks at its length. A clip of at most one segment
renders as before, in one piece (no planning pass, so no cost worth naming). A longer one gets
a cheap planning pass (style_engine.video.shots.find_cuts on frames decoded small), its segments are
recorded as child jobs (db.segments) that any host claims, and the film waits for them.

When the worker of the last segment to succeed wins the film's assembly (a guarded UPDATE in
the catalog, so it happens once), it concatenates the segments' stored frames (lossless PNG
checkpoints) into one H.264 MP4 with the source's audio, poster and preview: the film's
artwork, recorded on a Run of the film that lists which segment run made which frames.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from db.checkpoints import finished_frames
from db.jobs import JobSpec
from db.runs import ArtifactRecord
from db.segments import (
    film_params,
    plan_film,
    release_successor,
    segment_ids,
    segment_states,
    succeeded_run,
    take_assembly,
    wait_for_segments,
)
from db.session import retry_unavailable
from tasks.workshop import Workshop

Logger = logging.Logger | logging.LoggerAdapter


class FilmStep(Enum):
    """What a worker that holds a video job does with it."""

    RENDER = "render"  # one piece, as a clip always was (or a segment of a film)
    ASSEMBLE = "assemble"  # every segment succeeded: make the film
    PLANNED = "planned"  # handed to the fleet as segments (or still waiting for them): nothing to run


def film_step(workshop: Workshop, spec: JobSpec, logger: Logger) -> FilmStep:
    """Decide, for held video job ``spec``, whether to render it, assemble it or plan it into segments."""
    _, segment, _ = film_params(spec.params)
    if segment is not None:
        return FilmStep.RENDER
    planned = retry_unavailable(lambda: segment_ids(workshop.catalog, spec.id), f"reading the plan of job {spec.id}")
    if planned:  # taken up again (its assembly died, or a rerun): the plan stands
        if all(state.status == "succeeded" for state in segment_states(workshop.catalog, spec.id)):
            return FilmStep.ASSEMBLE
        wait_for_segments(workshop.catalog, spec.id, workshop.worker)
        logger.info("job %d waits for its segments %s", spec.id, planned)
        return FilmStep.PLANNED
    plan = plan_segments_of(workshop, spec, logger)
    if plan is None:
        return FilmStep.RENDER
    segments, cuts, handed_over = plan
    children = plan_film(workshop.catalog, spec.id, workshop.worker, segments, cuts, handed_over=handed_over)
    logger.info("job %d: %d segments for the fleet, jobs %s", spec.id, len(children), children)
    return FilmStep.PLANNED


def plan_segments_of(
    workshop: Workshop, spec: JobSpec, logger: Logger
) -> tuple[list[dict[str, Any]], list[int], list[bool]] | None:
    """The segments (as dicts), cuts and hand-over flags of job ``spec``'s clip; None when it
    renders in one piece (at most one segment long, multi-pass, or a plan of a single segment)."""
    from tasks.video_io import check_range, probe_video, read_frames
    from tasks.video_render import video_params

    params = video_params(spec.method, film_params(spec.params)[0])
    limit = workshop.config.segment_frames
    label = f"video {spec.content.id} ({spec.content.uri})"
    source = workshop.inputs.fetch_path(spec.content.uri, spec.content.sha256)
    info = probe_video(source, name=label)
    count = check_range(info, params.start, params.frames, label)
    if count <= limit or params.passes > 1:
        return None
    from style_engine.video.shots import PLANNING_SIZE, find_cuts, plan_segments, segment_overlap

    started = time.perf_counter()
    frames = read_frames(source, info, size=PLANNING_SIZE, start=params.start, count=count, name=label)
    cuts = find_cuts(frames, scene_cut=params.scene_cut, flow_method=params.flow)
    segments = plan_segments(count, cuts, limit, segment_overlap(params))
    logger.info("job %d: planned %d frames in %.1f s: cuts at %s, %d segments of at most %d frames", spec.id, count,
                time.perf_counter() - started, cuts, len(segments), limit)
    if len(segments) < 2:
        return None
    return [segment.to_dict() for segment in segments], cuts, [needs_hand_over(params, s) for s in segments]


def needs_hand_over(params: Any, segment: Any) -> bool:
    """Whether a segment continues its predecessor's chain from the predecessor's stored outputs,
    and so starts only once that segment has succeeded.

    Ruder's method inside a shot: a chunk started from scratch is a visible jump (its first frame
    lacks the many iterations of style the chained frames carry; README "Video"), so the chunk is
    handed the previous outputs and renders the very bytes of a one-host render. Fast video
    forgets its start within a few warm-up frames, so its chunks are independent.
    """
    from style_engine.video.params import VideoGatysParams

    return isinstance(params, VideoGatysParams) and segment.context_start < segment.start


def previous_outputs(workshop: Workshop, film_id: int, segment: Any) -> list[np.ndarray]:
    """The stored outputs of frames ``[segment.context_start, segment.start)`` (the hand-over), made
    by the segments before it in the same shot (a short chunk's context can reach past its
    predecessor; every chunk of the shot before this one has succeeded, each having waited for
    the one before it)."""
    before = [state for state in segment_states(workshop.catalog, film_id)
              if state.index < segment.index and state.end > segment.context_start]
    first = before[0].start if before else segment.start
    frames = list(stored_frames(workshop, before))[segment.context_start - first:]
    wanted = segment.start - segment.context_start
    if len(frames) != wanted:
        raise RuntimeError(f"segment {segment.index}: {len(frames)} of the {wanted} earlier frames it continues from")
    return frames


def after_segment(workshop: Workshop, spec: JobSpec, run_film: Any, logger: Logger) -> None:
    """A segment of a film succeeded: let the segment that continues it start, and assemble the
    film if this was its last segment."""
    index = film_params(spec.params)[1]["index"]
    released = retry_unavailable(lambda: release_successor(workshop.catalog, spec.parent_job_id, index),
                                 f"releasing the segment after job {spec.id}")
    if released:
        logger.info("job %d: its frames hand over to segment job %s, claimable now", spec.id, released)
    assemble_if_last(workshop, spec.parent_job_id, run_film, logger)


def assemble_if_last(workshop: Workshop, film_id: int, run_film: Any, logger: Logger) -> None:
    """After a segment of film ``film_id`` succeeded: assemble the film if this was its last
    segment and this worker wins the assembly (``run_film(film_id)`` runs it as a recorded attempt).

    A failed assembly is recorded on the film's own Run (and retried like any job's failure);
    it never turns the segment, already recorded as succeeded, into a failure.
    """
    taken = retry_unavailable(
        lambda: take_assembly(workshop.catalog, film_id, workshop.worker, workshop.config.lease_seconds),
        f"asking for the assembly of job {film_id}")
    if not taken:
        return
    logger.info("job %d: every segment is done; assembling the film", film_id)
    try:
        run_film(film_id)
    except Exception as exc:  # recorded on the film's Run by the attempt itself
        logger.error("job %d: the assembly failed (recorded on its run): %s: %s", film_id, type(exc).__name__, exc)


def assemble_film(
    workshop: Workshop, spec: JobSpec, timings: dict[str, float], logger: Logger
) -> tuple[list[ArtifactRecord], dict[str, Any]]:
    """Make held film ``spec`` from its segments' stored frames: its MP4 (with the source's audio),
    poster and preview, and metrics naming the segment runs that made each range of frames."""
    from tasks.job import phase
    from tasks.video_io import check_range, probe_video
    from tasks.video_job import upload_video
    from tasks.video_render import encode_clip, video_params

    params = video_params(spec.method, film_params(spec.params)[0])
    label = f"video {spec.content.id} ({spec.content.uri})"
    states = segment_states(workshop.catalog, spec.id)
    with phase(timings, "load"):
        source = workshop.inputs.fetch_path(spec.content.uri, spec.content.sha256)
        info = probe_video(source, name=label)
        count = check_range(info, params.start, params.frames, label)
    ranges = [(state.start, state.end) for state in states]
    if ranges[0][0] != 0 or ranges[-1][1] != count or any(a[1] != b[0] for a, b in zip(ranges, ranges[1:])):
        raise RuntimeError(f"job {spec.id}: its segments {ranges} do not cover frames 0..{count - 1} exactly once")
    with tempfile.TemporaryDirectory(prefix="atelier-film-") as folder:
        target = Path(folder) / "film.mp4"
        with phase(timings, "compute"):
            encoded = encode_clip(stored_frames(workshop, states), target, source, info, params.start, count)
        if encoded.frames != count:
            raise RuntimeError(f"job {spec.id}: assembled {encoded.frames} frames of {count}")
        with phase(timings, "upload"):
            artifacts = upload_video(workshop, target, encoded.result(info, {}))
    metrics = {**film_metrics(workshop, states), "fps": info.fps, "frames": float(count)}
    logger.info("job %d: assembled %d frames from %d segments", spec.id, count, len(states))
    return artifacts, metrics


def stored_frames(workshop: Workshop, states: list[Any]) -> Iterator[np.ndarray]:
    """The segments' checkpointed frames in film order, each checked against its sha256 on the way."""
    for state in states:
        checkpoints = finished_frames(workshop.catalog, state.job_id)
        if len(checkpoints) < state.frames:
            raise RuntimeError(f"segment job {state.job_id} has {len(checkpoints)} of its {state.frames} frames stored")
        for checkpoint in checkpoints[: state.frames]:
            data = workshop.store.get_bytes(checkpoint.uri, sha256=checkpoint.sha256)
            with Image.open(io.BytesIO(data)) as picture:
                yield np.asarray(picture.convert("RGB"))


def film_metrics(workshop: Workshop, states: list[Any]) -> dict[str, Any]:
    """Which run of which segment made which frames, and the film's figures weighted by frames."""
    per_segment = []
    weighted: dict[str, float] = {}
    for state in states:
        run_id, metrics = succeeded_run(workshop.catalog, state.job_id)
        per_segment.append({"job_id": state.job_id, "run_id": run_id, "host": state.host, "start": state.start,
                            "end": state.end, "warping_error": metrics.get("warping_error"),
                            "seconds_per_frame": metrics.get("seconds_per_frame")})
        for key in ("warping_error", "seconds_per_frame", "style_dist", "flow_share"):
            if isinstance(metrics.get(key), (int, float)):
                weighted[key] = weighted.get(key, 0.0) + metrics[key] * state.frames
    total = sum(state.frames for state in states)
    return {**{key: value / total for key, value in weighted.items()}, "segments": per_segment,
            "hosts": sorted({state.host for state in states if state.host})}

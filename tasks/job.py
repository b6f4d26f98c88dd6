"""Running one job, start to finish, as plain Python (the Prefect task is a thin wrapper).

The order of steps is the contract with the catalog: the job must be held (claimed by
this worker) before a Run is opened; a Run is closed exactly once, as succeeded (with
its artifacts and the job's new status in one transaction), as failed (with the error;
also when the final commit itself fails), or as interrupted (a stop was requested: the
job goes back to pending and the attempt is not counted). A worker that lost its lease
records nothing: the catalog raises LeaseLost.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db import LeaseLost
from db.claims import claim_jobs, renew_lease
from db.jobs import JobSpec, job_spec
from db.models import ArtifactKind, JobStatus
from db.runs import ArtifactRecord, complete_run, fail_run, release_jobs, start_run
from db.session import retry_unavailable
from tasks.film import FilmStep, film_step
from tasks.loss_curve import LossCurve
from tasks.progress import note_share_done, throttled_progress
from tasks.provenance import device_name, library_versions, png_provenance
from tasks.retry import is_transient
from tasks.stopping import Interrupted, raise_if_stopped
from tasks.workshop import Workshop

if TYPE_CHECKING:
    from storage.base import StoredObject

THUMBNAIL_SIDE = 256
ITN_METHODS = ("itn", "itn-train")


class JobNotHeld(RuntimeError):
    """The job cannot be claimed by this worker: another holds it, or it is already done."""


class JobFailed(RuntimeError):
    """The catalog has recorded the job as failed for good; retrying the task is pointless."""


@dataclass(frozen=True)
class RunIds:
    """Where an attempt sits in Prefect, recorded on the Run to link the two histories."""

    flow_run_id: str | None
    task_run_id: str | None


@dataclass(frozen=True)
class JobResult:
    """What a task hands back: ids and URIs only (a flow keeps every result in memory)."""

    job_id: int
    run_id: int
    output_uri: str
    thumbnail_uri: str


def perform_job(
    workshop: Workshop, job_id: int, ids: RunIds, *, final_attempt: bool, logger: logging.Logger | logging.LoggerAdapter
) -> JobResult | None:
    """Run job `job_id` and record the outcome; raise after recording a failure. None: a film
    handed to the fleet as segments (nothing rendered here)."""
    raise_if_stopped()  # a claimed job not started yet is released by the batch
    spec = hold_job(workshop, job_id)
    step = film_step_of(workshop, spec, ids, final_attempt=final_attempt, logger=logger)
    if step is FilmStep.PLANNED:
        return None
    run_id = open_run(workshop, spec, ids)
    timings: dict[str, float] = {}
    try:
        if step is FilmStep.ASSEMBLE:
            from tasks.film import assemble_film

            artifacts, metrics = assemble_film(workshop, spec, timings, logger)
            cache_hit, loss_curve = None, None
        elif is_video_method(spec.method):
            from tasks.video_job import run_video

            artifacts, metrics = run_video(workshop, spec, run_id, timings, logger)
            cache_hit, loss_curve = None, None
        else:
            with phase(timings, "load"):
                content, styles = load_inputs(workshop, spec)
            with phase(timings, "compute"):
                curve = LossCurve()
                result = render(workshop, spec, content, styles, logger, curve)
            with phase(timings, "upload"):
                artifacts = upload_outputs(workshop, spec, result.image)
            metrics = picture_metrics(result)
            cache_hit, loss_curve = result.cache_hit, curve.points()
        # Inside the `try`: a connection dropped during this commit must still close the run.
        complete_run(
            workshop.catalog,
            run_id,
            workshop.worker,
            artifacts=artifacts,
            timings=timings,
            metrics=metrics,
            loss_curve=loss_curve,
            peak_memory_bytes=peak_memory(workshop.device),
            cache_hit=cache_hit,
        )
    except Exception as exc:
        close_unfinished_run(workshop, job_id, run_id, exc, timings, final_attempt=final_attempt, logger=logger)
        raise
    logger.info("job %d succeeded in %.1f s (compute %.1f s)", job_id, sum(timings.values()), timings["compute"])
    if spec.parent_job_id is not None:  # a segment of a film: hand over to the next; the last one assembles it
        from tasks.film import after_segment

        after_segment(workshop, spec,
                      lambda film_id: perform_job(workshop, film_id, ids, final_attempt=final_attempt, logger=logger),
                      logger)
    return JobResult(job_id, run_id, artifacts[0].uri, artifacts[-1].uri)


def film_step_of(
    workshop: Workshop, spec: JobSpec, ids: RunIds, *, final_attempt: bool, logger: logging.Logger | logging.LoggerAdapter
) -> FilmStep:
    """For a video job: render it, assemble its film, or nothing (its segments went to the
    fleet; tasks.film). A planning that fails is recorded as the attempt's failure."""
    if not is_video_method(spec.method):
        return FilmStep.RENDER
    try:
        return film_step(workshop, spec, logger)
    except LeaseLost:
        raise
    except Exception as exc:
        run_id = open_run(workshop, spec, ids)
        close_unfinished_run(workshop, spec.id, run_id, exc, {}, final_attempt=final_attempt, logger=logger)
        raise


def open_run(workshop: Workshop, spec: JobSpec, ids: RunIds) -> int:
    """Open the Run of an attempt at held job `spec`, with what will make it (versions, device, host)."""
    reset_peak_memory(workshop.device)
    return start_run(
        workshop.catalog,
        spec.id,
        workshop.worker,
        params=spec.params,
        seed=spec.params.get("seed"),
        versions={**library_versions(), **weights_provenance(spec.method, workshop)},
        device=device_name(workshop.device),
        host=workshop.host,
        flow_run_id=ids.flow_run_id,
        task_run_id=ids.task_run_id,
    )


def close_unfinished_run(
    workshop: Workshop, job_id: int, run_id: int, exc: Exception, timings: dict[str, float], *,
    final_attempt: bool, logger: logging.Logger | logging.LoggerAdapter,
) -> None:
    """Close the Run of an attempt that ended in `exc`: nothing for a lost lease (another worker
    holds the job), released for a stop request, failed (with the reason) otherwise."""
    if isinstance(exc, LeaseLost):
        return
    if isinstance(exc, Interrupted):
        reason = str(exc)
        retry_unavailable(lambda: release_jobs(workshop.catalog, reason, job_ids=[job_id], worker=workshop.worker),
                          f"releasing interrupted job {job_id}")
        logger.info("job %d released (pending again, the attempt not counted): %s", job_id, reason)
        return
    record_failure(workshop, run_id, exc, timings, retry_later=is_transient(exc) and not final_attempt)


def picture_metrics(result: Any) -> dict[str, Any]:
    """A picture Run's metrics: the engine's quality figures, final losses, evaluations spent and,
    for a render too large for the device, its tile plan (tile size, halo, tiles per level)."""
    plan = {"tile_plan": result.tile_plan} if result.tile_plan else {}
    return {**result.metrics, "losses": result.losses, "iterations": result.iterations, **plan}


def is_video_method(method: str) -> bool:
    """Video methods decode, checkpoint and encode clips (tasks.video_job); the rest render one picture."""
    return method.startswith("video_")


def hold_job(workshop: Workshop, job_id: int) -> JobSpec:
    """The job's spec, claiming it by id first unless this worker already holds it.

    The flow claims jobs before submitting them; a Prefect retry of a transient failure
    finds the job pending again (the catalog released it) and claims it here.
    """
    with workshop.catalog.reader() as session:
        spec = job_spec(session, job_id)
    if spec.status == JobStatus.RUNNING and spec.claimed_by == workshop.worker:
        return spec
    if not claim_jobs(workshop.catalog, 1, workshop.worker, workshop.config.lease_seconds, job_ids=[job_id]):
        raise JobNotHeld(f"job {job_id} is {spec.status} and cannot be claimed by {workshop.worker}")
    with workshop.catalog.reader() as session:
        return job_spec(session, job_id)


def weights_provenance(method: str, workshop: Workshop) -> dict[str, str]:
    """Which VGG weights the engine will use, for the Run's versions (loaded once per process).

    A loading error is left for the engine to raise inside the recorded attempt.
    """
    if method == "noop":
        return {}
    from style_engine.errors import InvalidInputError
    from style_engine.vgg import load_vgg

    try:
        loaded = load_vgg(workshop.config.weights, workshop.device)
    except InvalidInputError:
        return {"weights_source": workshop.config.weights}
    return {"weights_source": loaded.source, "weights_sha256": loaded.sha256}


def load_inputs(workshop: Workshop, spec: JobSpec) -> tuple[Any, list[Any]]:
    """Decode the content and style images, fetched through the local sha256 cache."""
    from style_engine.images import load_image

    def load(ref: Any, role: str) -> Any:
        data = workshop.inputs.fetch(ref.uri, ref.sha256)
        name = f"{role} image {ref.id} ({ref.uri})"
        return load_image(data, name=name, max_pixels=workshop.config.max_image_pixels)

    return load(spec.content, "content"), [load(ref, "style") for ref in spec.styles]


def render(workshop: Workshop, spec: JobSpec, content: Any, styles: list[Any], logger: Any, curve: LossCurve,
           tiles: Any = None) -> Any:
    """Run the engine, logging progress, recording the loss curve and keeping the lease alive on long runs.

    ``tiles``: the render plan a recorded run followed (``atelier reproduce``); None plans it here."""
    from style_engine.methods import run_method

    on_step = progress_callback(workshop, spec, logger, curve)
    if spec.method in ITN_METHODS:  # fast style networks: train one, or stylize with a stored one
        from tasks.itn import render_itn

        return render_itn(workshop, spec, content, styles, on_step)
    return run_method(
        spec.method,
        content,
        styles,
        spec.params,
        style_weights=list(spec.style_weights),
        device=workshop.device,
        weights=workshop.config.weights,
        cache=workshop.style_targets,
        style_keys=[ref.sha256 for ref in spec.styles],
        on_step=on_step,
        tiles=tiles,
    )


def progress_callback(
    workshop: Workshop, spec: JobSpec, logger: Any, curve: LossCurve
) -> Callable[[int, int, dict[str, float]], None]:
    """The engine's `on_step` for job `spec`: stop on request, progress, loss curve, lease renewal."""
    report = throttled_progress(logger, f"job {spec.id}")
    keep_lease = lease_keeper(workshop, spec.id)

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        raise_if_stopped()  # Ctrl-C, SIGTERM or a cancelled flow run: stop at this evaluation
        note_share_done(spec.id, step / total if total else 1.0)
        report(step, total, losses)
        curve.add(step, losses)
        keep_lease()

    return on_step


def lease_keeper(workshop: Workshop, job_id: int) -> Callable[[], None]:
    """A callable that renews the job's lease once a third of it has passed.

    Without renewal a job longer than the lease would be claimed by a second worker
    while the first still runs it.
    """
    interval = workshop.config.lease_seconds / 3
    last = time.monotonic()

    def keep() -> None:
        nonlocal last
        if time.monotonic() - last >= interval:
            renew_lease(workshop.catalog, job_id, workshop.worker, workshop.config.lease_seconds)
            last = time.monotonic()

    return keep


def upload_outputs(workshop: Workshop, spec: JobSpec, image: Any) -> list[ArtifactRecord]:
    """Store the output PNG (tagged with what made it) and its thumbnail, made from the pixels
    in hand (the stored PNG is never decoded for it).

    Each PNG is encoded into a temporary file and streamed to the store (in parts, on S3): a
    print-size render is about 200 MB of PNG, which as bytes would sit whole in memory beside
    its pixels.
    """
    from style_engine.images import save_png, thumbnail

    metadata = png_provenance(spec.method, spec.params, content=spec.content.sha256,
                              styles=[ref.sha256 for ref in spec.styles], job=str(spec.id))
    thumb = thumbnail(image, THUMBNAIL_SIDE)
    records = []
    with tempfile.TemporaryDirectory(prefix="atelier-upload-") as scratch:
        for kind, picture, meta in ((ArtifactKind.OUTPUT, image, metadata), (ArtifactKind.THUMBNAIL, thumb, None)):
            encoded = Path(scratch) / f"{kind.value}.png"
            save_png(picture, encoded, meta)
            stored = workshop.store.put_file(encoded, suffix=".png", content_type="image/png")
            records.append(artifact_record(kind, stored, width=picture.width, height=picture.height))
    return records


def artifact_record(kind: ArtifactKind, stored: StoredObject, **dimensions: int | float | None) -> ArtifactRecord:
    """The catalog row of an object just put in the store; `dimensions` are width, height, frames, fps."""
    return ArtifactRecord(kind=kind.value, uri=stored.uri, sha256=stored.sha256, bytes=stored.size,
                          content_type=stored.content_type, **dimensions)


def record_failure(
    workshop: Workshop, run_id: int, exc: BaseException, timings: dict[str, float], *, retry_later: bool
) -> None:
    """Close the run as failed; raise JobFailed when a transient error has used up its retries.

    The catalog puts a job with a transient error back to pending while attempts remain;
    when it answers `failed`, another Prefect retry would find nothing to claim.
    """
    status = retry_unavailable(
        lambda: fail_run(
            workshop.catalog,
            run_id,
            workshop.worker,
            error_type=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
            traceback="".join(traceback.format_exception(exc)),
            transient=retry_later,
            timings=timings,
        ),
        f"recording the failure of run {run_id}",
    )
    if status == JobStatus.FAILED and is_transient(exc):
        raise JobFailed(f"{type(exc).__name__}: {exc}") from exc


PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_memory(device: str) -> None:
    """Start a run's peak memory from what is in use now, so that a worker's Run records its own
    peak, not the largest of every job the process ran before. On a CPU the peak is the process's
    resident set (Linux: writing 5 to clear_refs resets its high-water mark). Jobs running beside it
    in the same process (several GPU slots) share the count."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(device))
    elif PROC_CLEAR_REFS.exists():
        PROC_CLEAR_REFS.write_text("5")


def peak_memory(device: str) -> int | None:
    """This process's peak memory since the run started: the CUDA allocator's on a GPU, the
    resident set's on a Linux CPU, None where neither is known (macOS, MPS)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    if device == "cpu" and PROC_STATUS.exists():
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


@contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to `timings[name]` (recorded even on failure)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 4)

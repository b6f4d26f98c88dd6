"""Running picture jobs that share style, size and parameters as one batched optimization.

Each job is still its own attempt, exactly as in tasks.job: held by this worker, its own Run
opened before any work and closed exactly once, its own inputs, artifacts, metrics, loss curve
and lease. Only the engine's optimization is shared (style_engine.gatys.batched), and its
outcomes are per job: a job whose input cannot be read, whose optimization diverges or whose
lease is lost fails (or is left) alone while the others complete.

A transient failure is recorded as transient (the job is pending again while attempts remain)
and its id returned, so that the flow gives it the retries of the single-job task.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from db import LeaseLost
from db.jobs import JobSpec, job_spec
from db.runs import complete_run
from tasks.job import (
    JobFailed,
    JobNotHeld,
    RunIds,
    close_unfinished_run,
    hold_job,
    load_inputs,
    open_run,
    peak_memory,
    phase,
    picture_metrics,
    progress_callback,
    upload_outputs,
)
from tasks.loss_curve import LossCurve
from tasks.retry import is_transient
from tasks.stopping import Interrupted, raise_if_stopped
from tasks.workshop import Workshop

Logger = logging.Logger | logging.LoggerAdapter
BATCHED_METHODS = ("gatys",)


@dataclass
class _Attempt:
    """One job's attempt inside the batch, and how it ended (``error`` None: succeeded)."""

    spec: JobSpec
    run_id: int
    timings: dict[str, float] = field(default_factory=dict)
    curve: LossCurve = field(default_factory=LossCurve)
    content: Any = None
    styles: list[Any] = field(default_factory=list)
    error: Exception | None = None


def batch_capacity_of(spec: JobSpec, device: str) -> int:
    """How many jobs like `spec` one optimization takes at once on `device` (1: it runs alone)."""
    from style_engine.gatys.batched import batchable, images_per_batch
    from style_engine.errors import InvalidInputError
    from style_engine.params import GatysParams, parse_params

    if spec.method not in BATCHED_METHODS:
        return 1
    try:
        params = parse_params(spec.method, spec.params)
    except InvalidInputError:
        return 1  # the job fails alone, inside its recorded attempt
    if not isinstance(params, GatysParams) or not batchable(params):
        return 1
    return images_per_batch(params, device)


def plan_batches(workshop: Workshop, job_ids: list[int]) -> list[list[int]]:
    """Split claimed jobs into units of work: groups that share an optimization, and single jobs.

    Jobs group when their method batches, they fit the device whole (a tiled render runs alone)
    and they share styles, style weights and parameters;
    a group is cut at the number of images the device holds at once (so that every job of a
    unit is running, and renewing its lease, while the unit runs).
    """
    from style_engine.gatys.batched import batchable, fits_whole, images_per_batch
    from style_engine.params import GatysParams, parse_params

    with workshop.catalog.reader() as session:
        specs = [job_spec(session, job_id) for job_id in job_ids]
    groups: dict[Hashable, list[JobSpec]] = {}
    units: list[list[int]] = []
    for spec in specs:
        params = parse_params(spec.method, spec.params) if spec.method in BATCHED_METHODS else None
        if not isinstance(params, GatysParams) or not batchable(params) or not fits_whole(params, workshop.device):
            units.append([spec.id])
            continue
        key = (spec.method, json.dumps(params.to_dict(), sort_keys=True),
               tuple(ref.sha256 for ref in spec.styles), spec.style_weights)
        groups.setdefault(key, []).append(spec)
    for members in groups.values():
        params = parse_params(members[0].method, members[0].params)
        assert isinstance(params, GatysParams)
        size = images_per_batch(params, workshop.device)
        units += [[spec.id for spec in members[start:start + size]] for start in range(0, len(members), size)]
    return units


def perform_batch(workshop: Workshop, job_ids: list[int], ids: RunIds, *, logger: Logger) -> list[int]:
    """Run `job_ids` (same style, size and parameters) together; record each outcome on its own Run.

    Returns the jobs that failed transiently and are pending again. Raises Interrupted, after
    releasing the unfinished jobs, when a stop was requested.
    """
    attempts: list[_Attempt] = []
    try:
        for job_id in job_ids:
            raise_if_stopped()  # claimed jobs not started yet are released by the flow
            attempt = _open(workshop, job_id, ids, logger)
            attempts += [attempt] if attempt is not None else []
    except Interrupted as exc:  # the runs opened so far are released below
        for attempt in attempts:
            attempt.error = exc
    for attempt in attempts:
        if attempt.error is None:
            _load(workshop, attempt)
    ready = [attempt for attempt in attempts if attempt.error is None]
    if ready:
        _render(workshop, ready, logger)
    retry: list[int] = []
    stopped: Interrupted | None = None
    for attempt in attempts:
        error = attempt.error
        if error is None:
            continue
        try:
            close_unfinished_run(workshop, attempt.spec.id, attempt.run_id, error, attempt.timings,
                                 final_attempt=False, logger=logger)
        except JobFailed:
            logger.error("job %d failed for good (no attempts left): %s", attempt.spec.id, error)
            continue
        if isinstance(error, Interrupted):
            stopped = error
        elif isinstance(error, LeaseLost):
            logger.warning("job %d: lease lost, nothing recorded (another worker holds it): %s", attempt.spec.id, error)
        elif is_transient(error):
            retry.append(attempt.spec.id)
        else:
            logger.error("job %d failed: %s: %s", attempt.spec.id, type(error).__name__, error)
    if stopped is not None:
        raise stopped
    return retry


def _open(workshop: Workshop, job_id: int, ids: RunIds, logger: Logger) -> _Attempt | None:
    try:
        spec = hold_job(workshop, job_id)
    except JobNotHeld as exc:
        logger.warning("job %d skipped: %s", job_id, exc)
        return None
    return _Attempt(spec, open_run(workshop, spec, ids))


def _load(workshop: Workshop, attempt: _Attempt) -> None:
    try:
        with phase(attempt.timings, "load"):
            attempt.content, attempt.styles = load_inputs(workshop, attempt.spec)
    except Exception as exc:  # this job's input (missing, corrupt, too large): this job fails
        attempt.error = exc


def _render(workshop: Workshop, ready: list[_Attempt], logger: Logger) -> None:
    """One batched optimization; each attempt gets its own outcome, artifacts and Run record."""
    from style_engine.gatys.batched import ItemOutcome, stylize_batch
    from style_engine.params import GatysParams, parse_params

    first = ready[0].spec
    params = parse_params(first.method, first.params)
    assert isinstance(params, GatysParams)
    started = time.perf_counter()
    try:
        outcomes = stylize_batch(
            [attempt.content for attempt in ready],
            ready[0].styles,
            params,
            style_weights=list(first.style_weights),
            device=workshop.device,
            weights=workshop.config.weights,
            cache=workshop.style_targets,
            style_keys=[ref.sha256 for ref in first.styles],
            on_steps=[progress_callback(workshop, attempt.spec, logger, attempt.curve) for attempt in ready],
        )
    except Exception as exc:  # the shared part failed (e.g. the style or the weights): every job fails with it
        outcomes = [ItemOutcome(error=exc) for _ in ready]
    share = round((time.perf_counter() - started) / len(ready), 4)
    for attempt, outcome in zip(ready, outcomes):
        attempt.timings["compute"] = share  # this job's share of the batch's optimization
        for warning in outcome.warnings:
            logger.warning("job %d: %s", attempt.spec.id, warning)
        if outcome.error is not None:
            attempt.error = outcome.error if isinstance(outcome.error, Exception) else RuntimeError(str(outcome.error))
        else:
            _finish(workshop, attempt, outcome.result, len(ready), logger)


def _finish(workshop: Workshop, attempt: _Attempt, result: Any, batch_size: int, logger: Logger) -> None:
    try:
        with phase(attempt.timings, "upload"):
            artifacts = upload_outputs(workshop, attempt.spec, result.image)
        complete_run(
            workshop.catalog,
            attempt.run_id,
            workshop.worker,
            artifacts=artifacts,
            timings=attempt.timings,
            metrics={**picture_metrics(result), "batch_size": batch_size},
            loss_curve=attempt.curve.points(),
            peak_memory_bytes=peak_memory(workshop.device),
            cache_hit=result.cache_hit,
        )
    except Exception as exc:  # an upload or the final commit failed: this job's run closes as failed
        attempt.error = exc
        return
    logger.info("job %d succeeded in a batch of %d (compute share %.1f s)", attempt.spec.id, batch_size,
                attempt.timings["compute"])

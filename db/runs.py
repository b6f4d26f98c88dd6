"""Recording attempts: start, complete or fail a run, and reset failed jobs for a rerun.

Every write is guarded by the lease: a worker records work only on a job it still holds
(`status = running AND claimed_by = worker`). A worker that lost its lease gets LeaseLost
and nothing is written, so a job is never completed twice.

Failure policy: a permanent failure fails the job at once. A transient one (`transient=True`)
puts the job back to `pending` while it has attempts left, so the next claim (a Prefect
retry re-claiming it by id, or any later flow) runs it again; without attempts left it fails.
A failed job stays failed until `reset_failed` makes it pending with a fresh attempt budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, select, update

from db.errors import LeaseLost, NotFound
from db.models import Artifact, Job, JobStatus, Run, RunStatus, utcnow
from db.session import Catalog

MAX_TRACEBACK_CHARS = 20_000


@dataclass(frozen=True)
class ArtifactRecord:
    """An object already in the store, to be recorded with a run."""

    kind: str
    uri: str
    sha256: str
    bytes: int
    content_type: str
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    fps: float | None = None


def _held(job_id: int, worker: str) -> Any:
    return and_(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.claimed_by == worker)


def start_run(
    catalog: Catalog,
    job_id: int,
    worker: str,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    versions: Mapping[str, Any] | None = None,
    device: str | None = None,
    host: str | None = None,
    flow_run_id: str | None = None,
    task_run_id: str | None = None,
) -> int:
    """Open a Run for a job this worker holds; returns the run id.

    `params` defaults to the job's; pass the fully resolved ones (seed and per-weights
    defaults filled in) when they differ, so the run alone suffices to reproduce it.
    """
    now = utcnow()
    with catalog.session() as session:
        job = session.execute(select(Job.params).where(_held(job_id, worker))).first()
        if job is None:
            raise LeaseLost(f"job {job_id} is not claimed by {worker}; claim it before starting a run")
        attempt = select(func.coalesce(func.max(Run.attempt), 0) + 1).where(Run.job_id == job_id).scalar_subquery()
        return session.scalars(
            insert(Run)
            .values(
                job_id=job_id,
                attempt=attempt,
                status=RunStatus.RUNNING,
                worker=worker,
                params=dict(params) if params is not None else job.params,
                seed=seed,
                versions=dict(versions or {}),
                device=device,
                host=host,
                started_at=now,
                timings={},
                metrics={},
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
            )
            .returning(Run.id)
        ).one()


def complete_run(
    catalog: Catalog,
    run_id: int,
    worker: str,
    *,
    artifacts: Sequence[ArtifactRecord],
    timings: Mapping[str, float] | None = None,
    metrics: Mapping[str, Any] | None = None,
    peak_memory_bytes: int | None = None,
    cache_hit: bool | None = None,
) -> list[int]:
    """In one transaction: close the run as succeeded, record its artifacts, mark the job
    succeeded and release its lease. Returns the artifact ids."""
    now = utcnow()
    with catalog.session() as session:
        run = _running(session, run_id, worker)
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=RunStatus.SUCCEEDED,
                finished_at=now,
                duration_s=(now - run.started_at).total_seconds(),
                timings=dict(timings or {}),
                metrics=dict(metrics or {}),
                peak_memory_bytes=peak_memory_bytes,
                cache_hit=cache_hit,
            )
            .execution_options(synchronize_session=False)
        )
        _release(session, run.job_id, worker, JobStatus.SUCCEEDED, now, error=(None, None))
        if not artifacts:
            return []
        return list(
            session.scalars(
                insert(Artifact).returning(Artifact.id, sort_by_parameter_order=True),
                [{**asdict(a), "run_id": run_id, "job_id": run.job_id, "created_at": now} for a in artifacts],
            )
        )


def fail_run(
    catalog: Catalog,
    run_id: int,
    worker: str,
    *,
    error_type: str,
    message: str,
    traceback: str | None = None,
    transient: bool = False,
    timings: Mapping[str, float] | None = None,
) -> str:
    """Close the run as failed and record the error on it and its job.

    Returns the job's new status: `pending` (transient, attempts left) or `failed`.
    """
    now = utcnow()
    if traceback is not None and len(traceback) > MAX_TRACEBACK_CHARS:
        traceback = "...\n" + traceback[-MAX_TRACEBACK_CHARS:]
    with catalog.session() as session:
        run = _running(session, run_id, worker)
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=RunStatus.FAILED,
                finished_at=now,
                duration_s=(now - run.started_at).total_seconds(),
                timings=dict(timings or {}),
                error_type=error_type,
                error_message=message,
                error_traceback=traceback,
            )
            .execution_options(synchronize_session=False)
        )
        retry = and_(literal(transient), Job.attempts < Job.max_attempts)
        next_status = case((retry, literal(JobStatus.PENDING.value)), else_=literal(JobStatus.FAILED.value))
        return _release(session, run.job_id, worker, next_status, now, error=(error_type, message))


def _running(session: Any, run_id: int, worker: str) -> Any:
    run = session.execute(
        select(Run.job_id, Run.started_at, Run.status, Run.worker).where(Run.id == run_id)
    ).first()
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    if run.status != RunStatus.RUNNING or run.worker != worker:
        raise LeaseLost(f"run {run_id} is {run.status} (worker {run.worker}); {worker} cannot record it")
    return run


def _release(
    session: Any, job_id: int, worker: str, status: Any, now: datetime, *, error: tuple[str | None, str | None]
) -> str:
    """Set the job's outcome and drop the lease, only if this worker still holds it."""
    new_status = session.scalars(
        update(Job)
        .where(_held(job_id, worker))
        .values(
            status=status,
            claimed_by=None,
            lease_expires_at=None,
            last_error_type=error[0],
            last_error_message=error[1],
            updated_at=now,
        )
        .returning(Job.status)
        .execution_options(synchronize_session=False)
    ).first()
    if new_status is None:
        # Raising rolls back the run and artifact rows written in this transaction.
        raise LeaseLost(f"job {job_id} is no longer claimed by {worker}; its result is discarded")
    return new_status


def reset_failed(
    catalog: Catalog,
    *,
    job_ids: Sequence[int] | None = None,
    since: datetime | None = None,
    method: str | None = None,
    error_contains: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Make failed jobs pending again with a fresh attempt budget; returns their ids.

    Succeeded jobs are never touched, so a rerun can only redo what has not succeeded.
    """
    query = select(Job.id).where(Job.status == JobStatus.FAILED).order_by(Job.id)
    if job_ids is not None:
        query = query.where(Job.id.in_(list(job_ids)))
    if since is not None:
        query = query.where(Job.updated_at >= since)
    if method is not None:
        query = query.where(Job.method == method)
    if error_contains:
        pattern = f"%{error_contains.lower()}%"
        query = query.where(
            func.lower(func.coalesce(Job.last_error_type, "") + " " + func.coalesce(Job.last_error_message, "")).like(
                pattern
            )
        )
    if limit is not None:
        query = query.limit(limit)
    with catalog.session() as session:
        ids = list(session.scalars(query))
        if not ids:
            return []
        return sorted(
            session.scalars(
                update(Job)
                .where(Job.id.in_(ids), Job.status == JobStatus.FAILED)
                .values(status=JobStatus.PENDING, attempts=0, claimed_by=None, lease_expires_at=None, updated_at=utcnow())
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
        )

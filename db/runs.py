"""Recording attempts: start, complete or fail a run, and reset failed jobs for a rerun.

Every write is guarded by the lease: a worker records work only on a job it still holds
(`status = running AND claimed_by = worker`). A worker that lost its lease gets LeaseLost
and nothing is written, so a job is never completed twice.

Failure policy: a permanent failure fails the job at once. A transient one (`transient=True`)
puts the job back to `pending` while it has attempts left, so the next claim (a Prefect
retry re-claiming it by id, or any later flow) runs it again; without attempts left it fails.
A failed job stays failed until `reset_failed` makes it pending with a fresh attempt budget.
`cancel_jobs` takes pending or failed jobs out of every batch (and puts them back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Float,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from db.errors import LeaseLost, NotFound
from db.models import Artifact, Job, JobStatus, Run, RunStatus, UTCDateTime, utcnow
from db.session import Catalog, database_now
from db.text import check_filter_text, contains_text

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


class _SecondsBetween(FunctionElement[float]):
    """`end - start` in seconds, computed by the database (its date arithmetic differs per dialect)."""

    type = Float()
    inherit_cache = True


@compiles(_SecondsBetween, "postgresql")
def _seconds_between_postgresql(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(_SecondsBetween)
def _seconds_between_sqlite(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _p(name: str, type_: Any = None) -> Any:
    return bindparam(f"p_{name}", type_=type_)


# The hot-path statements are built once: constructing SQLAlchemy statements costs more
# CPU than executing these small ones. Parameters are named p_<name>.

# INSERT ... SELECT FROM jobs WHERE <held>: the lease check and the insert are one statement.
_START_VALUES: dict[str, Any] = {
    "job_id": Job.id,
    "attempt": select(func.coalesce(func.max(Run.attempt), 0) + 1).where(Run.job_id == Job.id).scalar_subquery(),
    "status": literal(RunStatus.RUNNING.value),
    "worker": _p("worker", String()),
    "params": func.coalesce(_p("params", JSON(none_as_null=True)), Job.params),
    "seed": _p("seed", BigInteger()),
    "versions": _p("versions", JSON()),
    "device": _p("device", String()),
    "host": _p("host", String()),
    "started_at": _p("now", UTCDateTime()),
    "timings": _p("empty", JSON()),
    "metrics": _p("empty", JSON()),
    "flow_run_id": _p("flow_run_id", String()),
    "task_run_id": _p("task_run_id", String()),
}


def _held() -> ColumnElement[bool]:
    return and_(Job.id == _p("job_id"), Job.status == JobStatus.RUNNING, Job.claimed_by == _p("worker"))


_START_RUN = (
    insert(Run)
    .from_select(list(_START_VALUES), select(*_START_VALUES.values()).where(_held()))
    .returning(Run.id)
)

_CLOSE_RUN = (
    update(Run)
    .where(Run.id == _p("run_id"), Run.status == RunStatus.RUNNING, Run.worker == _p("worker"))
    .values(
        status=_p("status"),
        finished_at=_p("now", UTCDateTime()),
        duration_s=_SecondsBetween(Run.started_at, _p("now", UTCDateTime())),
        timings=_p("timings", JSON()),
        metrics=func.coalesce(_p("metrics", JSON(none_as_null=True)), Run.metrics),
        loss_curve=_p("loss_curve", JSON(none_as_null=True)),
        peak_memory_bytes=_p("peak_memory_bytes", BigInteger()),
        cache_hit=_p("cache_hit", Boolean()),
        error_type=_p("error_type", String()),
        error_message=_p("error_message", String()),
        error_traceback=_p("error_traceback", String()),
    )
    .returning(Run.job_id)
)

# Outcome of the job: `p_outcome`, except that a transient failure with attempts left
# (`p_retry`) puts it back to pending.
_RELEASE_JOB = (
    update(Job)
    .where(_held())
    .values(
        status=case(
            (
                and_(_p("retry", Boolean()), Job.attempts - Job.uncounted_attempts < Job.max_attempts),
                literal(JobStatus.PENDING.value),
            ),
            else_=_p("outcome", String()),
        ),
        claimed_by=None,
        lease_expires_at=None,
        last_error_type=_p("error_type", String()),
        last_error_message=_p("error_message", String()),
        updated_at=_p("now", UTCDateTime()),
    )
    .returning(Job.status)
)


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
    values = {
        "p_job_id": job_id, "p_worker": worker, "p_params": dict(params) if params is not None else None,
        "p_seed": seed, "p_versions": dict(versions or {}), "p_device": device, "p_host": host, "p_now": utcnow(),
        "p_empty": {}, "p_flow_run_id": flow_run_id, "p_task_run_id": task_run_id,
    }
    with catalog.transaction() as connection:
        run_id = connection.scalar(_START_RUN, values)
    if run_id is None:
        raise LeaseLost(f"job {job_id} is not claimed by {worker}; claim it before starting a run")
    return run_id


def complete_run(
    catalog: Catalog,
    run_id: int,
    worker: str,
    *,
    artifacts: Sequence[ArtifactRecord],
    timings: Mapping[str, float] | None = None,
    metrics: Mapping[str, Any] | None = None,
    loss_curve: Mapping[str, Any] | None = None,
    peak_memory_bytes: int | None = None,
    cache_hit: bool | None = None,
) -> list[int]:
    """In one transaction: close the run as succeeded, record its artifacts, mark the job
    succeeded and release its lease. Returns the artifact ids."""
    now = utcnow()
    with catalog.transaction() as connection:
        job_id = _close_run(connection, run_id, worker, now, status=RunStatus.SUCCEEDED, timings=timings,
                            metrics=dict(metrics or {}), loss_curve=dict(loss_curve) if loss_curve else None,
                            peak_memory_bytes=peak_memory_bytes, cache_hit=cache_hit)
        _release(connection, job_id, worker, now, outcome=JobStatus.SUCCEEDED)
        if not artifacts:
            return []
        return list(
            connection.scalars(
                insert(Artifact).returning(Artifact.id, sort_by_parameter_order=True),
                [{**asdict(a), "run_id": run_id, "job_id": job_id, "created_at": now} for a in artifacts],
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
    error = {"error_type": error_type, "error_message": message}
    with catalog.transaction() as connection:
        job_id = _close_run(connection, run_id, worker, now, status=RunStatus.FAILED, timings=timings,
                            error_traceback=traceback, **error)
        return _release(connection, job_id, worker, now, outcome=JobStatus.FAILED, retry=transient, **error)


_CLOSE_DEFAULTS = dict.fromkeys(
    ("metrics", "loss_curve", "peak_memory_bytes", "cache_hit", "error_type", "error_message", "error_traceback")
)


def _close_run(connection: Connection, run_id: int, worker: str, now: datetime, *, status: RunStatus,
               timings: Mapping[str, float] | None, **values: Any) -> int:
    """Finish a running run of this worker; returns its job id."""
    params = {**_CLOSE_DEFAULTS, **values, "run_id": run_id, "worker": worker, "now": now, "status": status.value,
              "timings": dict(timings or {})}
    job_id = connection.scalar(_CLOSE_RUN, {f"p_{k}": v for k, v in params.items()})
    if job_id is not None:
        return job_id
    run = connection.execute(select(Run.status, Run.worker).where(Run.id == run_id)).first()
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    raise LeaseLost(f"run {run_id} is {run.status} (worker {run.worker}); {worker} cannot record it")


def _release(connection: Connection, job_id: int, worker: str, now: datetime, *, outcome: JobStatus,
             retry: bool = False, error_type: str | None = None, error_message: str | None = None) -> str:
    """Set the job's outcome and drop the lease, only if this worker still holds it."""
    new_status = connection.scalar(_RELEASE_JOB, {
        "p_job_id": job_id, "p_worker": worker, "p_now": now, "p_outcome": outcome.value, "p_retry": retry,
        "p_error_type": error_type, "p_error_message": error_message,
    })
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

    The attempts made so far stay counted in `attempts` (the job's history) and are
    forgiven (`uncounted_attempts`), so the budget starts afresh.

    Succeeded jobs are never touched, so a rerun can only redo what has not succeeded.
    """
    check_filter_text("error-contains", error_contains)
    check_filter_text("method", method)
    query = select(Job.id).where(Job.status == JobStatus.FAILED).order_by(Job.id)
    if job_ids is not None:
        query = query.where(Job.id.in_(list(job_ids)))
    if since is not None:
        query = query.where(Job.updated_at >= since)
    if method is not None:
        query = query.where(Job.method == method)
    if error_contains:
        error_text = func.coalesce(Job.last_error_type, "") + " " + func.coalesce(Job.last_error_message, "")
        query = query.where(contains_text(error_text, error_contains))
    if limit is not None:
        query = query.limit(limit)
    with catalog.transaction() as connection:
        ids = list(connection.scalars(query))
        if not ids:
            return []
        return _move_jobs(connection, ids, (JobStatus.FAILED,), JobStatus.PENDING, uncounted_attempts=Job.attempts)


def cancel_jobs(catalog: Catalog, job_ids: Sequence[int], *, undo: bool = False) -> dict[int, str]:
    """Cancel pending, failed or waiting jobs (``undo``: make cancelled jobs pending again); each job's status after.

    A film is cancelled, and made pending again, with its segments (those not running or done).

    A running job is left alone: its worker is mid-render and would only throw the result away,
    so it is cancelled after it ends, if still unwanted. Unknown ids change nothing at all.
    """
    from db.segments import segments_of_films, wait_again_for_predecessors

    ids = sorted(set(job_ids))
    with catalog.transaction() as connection:
        missing = set(ids) - set(connection.scalars(select(Job.id).where(Job.id.in_(ids))))
        if missing:
            raise NotFound(f"no job with id {', '.join(map(str, sorted(missing)))}; nothing was changed")
        segments = segments_of_films(connection, ids)  # a film goes with its segments
        if undo:
            # A film comes back pending: the claim that takes it assembles it or has it wait again.
            _move_jobs(connection, [*ids, *segments], (JobStatus.CANCELLED,), JobStatus.PENDING,
                       uncounted_attempts=Job.attempts)
            wait_again_for_predecessors(connection, segments)
        else:
            _move_jobs(connection, [*ids, *segments], (JobStatus.PENDING, JobStatus.FAILED, JobStatus.WAITING),
                       JobStatus.CANCELLED)
        statuses = connection.execute(select(Job.id, Job.status).where(Job.id.in_(ids)))
        return {job_id: str(status) for job_id, status in statuses}


def _move_jobs(
    connection: Connection, ids: Sequence[int], sources: Sequence[JobStatus], target: JobStatus, **values: Any
) -> list[int]:
    """Move the jobs among ``ids`` that are in one of ``sources`` to ``target``, unclaimed; the moved ids."""
    return sorted(
        connection.scalars(
            update(Job)
            .where(Job.id.in_(list(ids)), Job.status.in_(sources))
            .values(status=target, claimed_by=None, lease_expires_at=None, updated_at=utcnow(), **values)
            .returning(Job.id)
        )
    )


def jobs_of_flow_run(catalog: Catalog, flow_run_id: str) -> list[int]:
    """Jobs that a Prefect flow run attempted, across all of its (retried) attempts.

    A retried flow run keeps its id, so this is how it finds its own earlier work.
    """
    with catalog.reader() as session:
        return sorted(set(session.scalars(select(Run.job_id).where(Run.flow_run_id == flow_run_id))))


INTERRUPTED = "Interrupted"


def release_jobs(
    catalog: Catalog,
    reason: str,
    *,
    job_ids: Sequence[int] | None = None,
    worker: str | None = None,
    flow_run_id: str | None = None,
    expired_only: bool = False,
) -> list[int]:
    """Put running jobs back to pending, unclaimed, without charging an attempt; the released ids.

    A job whose run had started gets that run closed as failed (`Interrupted`, with
    `reason`) and the attempt forgiven; a claim that never started a run is uncounted.
    Restrict by ids, by the worker holding them, by the Prefect flow run whose run of the
    job is open, and to expired leases (a job whose lease is live still has a worker that
    renews it).
    """
    now = utcnow()
    query = select(Job.id).where(Job.status == JobStatus.RUNNING)
    if job_ids is not None:
        query = query.where(Job.id.in_(list(job_ids)))
    if worker is not None:
        query = query.where(Job.claimed_by == worker)
    if flow_run_id is not None:
        open_runs = select(Run.job_id).where(Run.flow_run_id == flow_run_id, Run.status == RunStatus.RUNNING)
        query = query.where(Job.id.in_(open_runs))
    with catalog.transaction() as connection:
        if expired_only:  # by the database's clock, as the lease was set (db.claims)
            query = query.where(Job.lease_expires_at < database_now(connection))
        ids = list(connection.scalars(query.with_for_update()))
        if not ids:
            return []
        started = set(
            connection.scalars(
                update(Run)
                .where(Run.job_id.in_(ids), Run.status == RunStatus.RUNNING)
                .values(status=RunStatus.FAILED, finished_at=now, error_type=INTERRUPTED, error_message=reason,
                        duration_s=_SecondsBetween(Run.started_at, now))
                .returning(Run.job_id)
            )
        )
        unclaim = {"status": JobStatus.PENDING, "claimed_by": None, "lease_expires_at": None, "updated_at": now,
                   "last_error_type": INTERRUPTED, "last_error_message": reason}
        if started:
            connection.execute(
                update(Job).where(Job.id.in_(started)).values(uncounted_attempts=Job.uncounted_attempts + 1, **unclaim)
            )
        unstarted = sorted(set(ids) - started)
        if unstarted:
            connection.execute(update(Job).where(Job.id.in_(unstarted)).values(attempts=Job.attempts - 1, **unclaim))
    return sorted(ids)


def release_by_hand(catalog: Catalog, job_ids: Sequence[int], reason: str, *, force: bool) -> dict[int, str]:
    """Release stuck running jobs (see `release_jobs`); what happened to each, in words.

    A job whose lease is live is refused unless `force`: its worker may still be renewing
    it, and would then lose its result. Unknown ids change nothing at all.
    """
    ids = sorted(set(job_ids))
    with catalog.reader() as session:
        jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)))}
    missing = set(ids) - set(jobs)
    if missing:
        raise NotFound(f"no job with id {', '.join(map(str, sorted(missing)))}; nothing was changed")
    released = set(release_jobs(catalog, reason, job_ids=ids, expired_only=not force))
    outcome = {}
    for job_id, job in jobs.items():
        if job_id in released:
            outcome[job_id] = "released: pending again"
        elif job.status != JobStatus.RUNNING:
            outcome[job_id] = f"{job.status}: not running, nothing to release"
        else:
            outcome[job_id] = (f"refused: {job.claimed_by} holds it until {job.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC "
                               "(--force releases it anyway; that worker's result is then discarded)")
    return outcome

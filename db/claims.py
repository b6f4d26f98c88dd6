"""Atomic job claiming with leases.

A job is claimable when it is `pending`, or `running` with an expired lease (its worker
died), and it still has attempts left. Claiming sets the lease and counts an attempt:
`attempts` becomes the job's runs plus one, so a claim whose worker died before it started
a run is not counted twice (nor charged) when the job is claimed again.

PostgreSQL: one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, so
concurrent claimers pass over each other's rows instead of waiting or double-claiming.
SQLite: the same UPDATE inside a `BEGIN IMMEDIATE` transaction (see db.session), which
holds the database's single write lock from the first read, so no two claimers interleave.

A running job whose lease expired after its last allowed attempt is marked failed
(`LeaseExpired`) instead, and the orphaned run of a re-claimed job is closed as failed, so
run history never shows a run "running" forever.

Lease times are set and compared by the database's clock (`db.session.database_now`),
never by the worker's: hosts whose clocks disagree still agree on which leases are live.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CTE, ColumnElement, Connection, Select, and_, exists, func, or_, select, update

from db.errors import InvalidRequest, LeaseLost
from db.images import normalize_tags
from db.models import ImageTag, Job, JobStatus, JobStyle, Run, RunStatus
from db.session import Catalog, database_now

LEASE_EXPIRED = "LeaseExpired"


def _expired(now: datetime) -> ColumnElement[bool]:
    return and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)


def runs_of_job() -> Any:
    return select(func.count(Run.id)).where(Run.job_id == Job.id).scalar_subquery()


def _started_attempts_left() -> ColumnElement[bool]:
    """Attempts that started (runs) and are charged, fewer than allowed: a claim that never
    started its run is not charged."""
    return runs_of_job() - Job.uncounted_attempts < Job.max_attempts


def _rescuable(now: datetime) -> ColumnElement[bool]:
    """Running, but its worker stopped renewing the lease, and attempts are left."""
    return and_(_expired(now), _started_attempts_left())


def _filters(
    job_ids: Sequence[int] | None,
    methods: Sequence[str] | None,
    tags: Sequence[str] | None,
    min_priority: int | None,
) -> list[ColumnElement[bool]]:
    """Restrictions on which jobs to claim. `tags` match a tag on the content or any style image."""
    conditions: list[ColumnElement[bool]] = []
    if job_ids is not None:  # a film's id also names its segments (db.segments)
        conditions.append(or_(Job.id.in_(list(job_ids)), Job.parent_job_id.in_(list(job_ids))))
    if methods is not None:
        conditions.append(Job.method.in_(list(methods)))
    if min_priority is not None:
        conditions.append(Job.priority >= min_priority)
    if tags is not None:
        wanted = normalize_tags(tags)
        tagged = ImageTag.tag.in_(wanted)
        conditions.append(
            or_(
                exists().where(ImageTag.image_id == Job.content_id, tagged),
                exists().where(JobStyle.job_id == Job.id, JobStyle.image_id == ImageTag.image_id, tagged),
            )
        )
    return conditions


def claim_jobs(
    catalog: Catalog,
    n: int,
    worker: str,
    lease_seconds: float,
    *,
    job_ids: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    min_priority: int | None = None,
) -> list[int]:
    """Claim up to `n` jobs for `worker`; returns their ids.

    Jobs whose lease expired come first, then pending ones, each by highest priority, then oldest.
    """
    if n < 1:
        raise InvalidRequest(f"claim at least one job, not {n}")
    if lease_seconds <= 0:
        raise InvalidRequest(f"the lease must be positive, not {lease_seconds} s")
    conditions = _filters(job_ids, methods, tags, min_priority)
    with catalog.transaction() as connection:
        now = database_now(connection)
        claim = {
            "status": JobStatus.RUNNING,
            "claimed_by": worker,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "attempts": runs_of_job() + 1,
            "updated_at": now,
        }
        _fail_exhausted_leases(connection, now, catalog.dialect)
        # Rescued jobs (expired leases) first, then pending ones: two index-ordered scans,
        # because one query over "pending OR expired" would sort every pending job.
        rescued = _claim_where(connection, catalog.dialect, n, _rescuable(now), conditions, claim)
        if rescued:
            _close_orphaned_runs(connection, rescued, now, "lease expired; the job was claimed again")
        fresh = []
        if len(rescued) < n:
            pending = and_(Job.status == JobStatus.PENDING, Job.attempts - Job.uncounted_attempts < Job.max_attempts)
            fresh = _claim_where(connection, catalog.dialect, n - len(rescued), pending, conditions, claim)
    return sorted(rescued + fresh)


def _claim_where(connection: Connection, dialect: str, n: int, claimable: ColumnElement[bool],
                 conditions: list[ColumnElement[bool]], claim: dict[str, Any]) -> list[int]:
    picked = select(Job.id).where(claimable, *conditions).order_by(Job.status, Job.priority.desc(), Job.id).limit(n)
    statement = update(Job).where(Job.id == _locked(picked, dialect).c.id, claimable).values(**claim)
    return list(connection.scalars(statement.returning(Job.id)))


def _locked(query: Select[tuple[int]], dialect: str) -> CTE:
    """The ids to update, as a CTE evaluated once.

    On PostgreSQL the rows are locked with SKIP LOCKED (other claimers' rows are passed
    over) and the CTE is MATERIALIZED: an `IN (subquery ... LIMIT n)` may be re-evaluated
    by the planner and then update more than n rows.
    """
    if dialect != "postgresql":
        return query.cte("picked")
    return query.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")


def _fail_exhausted_leases(connection: Connection, now: datetime, dialect: str) -> None:
    """Expired leases on jobs without attempts left: the job fails instead of hanging."""
    stuck = select(Job.id).where(_expired(now), ~_started_attempts_left())
    message = "the worker's lease expired on its last attempt"
    failed = list(
        connection.scalars(
            update(Job)
            .where(Job.id == _locked(stuck, dialect).c.id, _expired(now))
            .values(
                status=JobStatus.FAILED,
                claimed_by=None,
                lease_expires_at=None,
                last_error_type=LEASE_EXPIRED,
                last_error_message=message,
                updated_at=now,
            )
            .returning(Job.id)
        )
    )
    if failed:
        _close_orphaned_runs(connection, failed, now, message)


def _close_orphaned_runs(connection: Connection, job_ids: list[int], now: datetime, message: str) -> None:
    connection.execute(
        update(Run)
        .where(Run.job_id.in_(job_ids), Run.status == RunStatus.RUNNING)
        .values(status=RunStatus.FAILED, finished_at=now, error_type=LEASE_EXPIRED, error_message=message)
    )


def renew_lease(catalog: Catalog, job_id: int, worker: str, lease_seconds: float) -> datetime:
    """Extend a held lease (call it well within the lease); raises LeaseLost if not held."""
    with catalog.transaction() as connection:
        expires = database_now(connection) + timedelta(seconds=lease_seconds)
        renewed = connection.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.claimed_by == worker)
            .values(lease_expires_at=expires)
        ).rowcount
    if not renewed:
        raise LeaseLost(f"job {job_id} is no longer claimed by {worker}")
    return expires


def renew_waiting_leases(catalog: Catalog, job_ids: Sequence[int], worker: str, lease_seconds: float) -> list[int]:
    """Extend the leases of claimed jobs still waiting their turn; the ids still held.

    A run claims a unit's worth of work at a time, and a batch top-up can claim jobs that
    wait behind the unit in front of them: without this their lease would run out and a
    second host would take them while this one is about to start them. A job whose lease
    was lost meanwhile is left out of the answer, so its waiting worker drops it.
    """
    if not job_ids:
        return []
    with catalog.transaction() as connection:
        expires = database_now(connection) + timedelta(seconds=lease_seconds)
        return sorted(
            connection.scalars(
                update(Job)
                .where(Job.id.in_(list(job_ids)), Job.status == JobStatus.RUNNING, Job.claimed_by == worker)
                .values(lease_expires_at=expires)
                .returning(Job.id)
            )
        )


def holders_on_host(catalog: Catalog, host: str) -> list[str]:
    """The workers (`host:pid`) of `host` that hold running jobs."""
    with catalog.reader() as session:
        held = select(Job.claimed_by).where(
            Job.status == JobStatus.RUNNING, Job.claimed_by.startswith(f"{host}:", autoescape=True)
        )
        return sorted(set(session.scalars(held.distinct())))


def expire_leases(catalog: Catalog, workers: Sequence[str]) -> list[int]:
    """End the leases of `workers`' running jobs now (the workers are known to be dead), so
    that the next claim takes the jobs up as it would after their leases ran out."""
    if not workers:
        return []
    with catalog.transaction() as connection:
        ended = database_now(connection) - timedelta(seconds=1)
        return sorted(
            connection.scalars(
                update(Job)
                .where(Job.status == JobStatus.RUNNING, Job.claimed_by.in_(list(workers)))
                .values(lease_expires_at=ended)
                .returning(Job.id)
            )
        )

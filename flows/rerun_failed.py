"""Rerun failed jobs, chosen by id or by when, how and why they failed.

Selection and reset happen in one catalog call that only touches failed jobs, so running
the flow twice does no work twice: the second run finds nothing failed to select.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from prefect import flow
from prefect.client.schemas.objects import State

from db.claims import claim_jobs
from db.runs import reset_failed
from db.session import retry_unavailable
from flows.batch import open_workshop, release_jobs_of_ended_flow_run, run_batch
from flows.report import BatchReport


@flow(name="rerun-failed", retries=0, on_cancellation=[release_jobs_of_ended_flow_run], on_crashed=[release_jobs_of_ended_flow_run])
def rerun_failed(
    job_ids: list[int] | None = None,
    since: datetime | None = None,
    method: str | None = None,
    error_contains: str | None = None,
    max_jobs: int = 100,
) -> BatchReport | State:
    """Reset the selected failed jobs to pending, claim exactly those, and run them.

    A `since` without a time zone is taken as UTC, the catalog's clock.
    """
    workshop = open_workshop()
    reopened = retry_unavailable(
        lambda: reset_failed(
            workshop.catalog,
            job_ids=job_ids or None,
            since=since.replace(tzinfo=UTC) if since and since.tzinfo is None else since,
            method=method,
            error_contains=error_contains,
            limit=max_jobs,
        ),
        "rerun-failed: selecting failed jobs",
    )

    def claim(n: int, only: Sequence[str] | None) -> list[int]:
        if not reopened:
            return []
        return claim_jobs(workshop.catalog, n, workshop.worker, workshop.config.lease_seconds, job_ids=reopened,
                          methods=only)

    return run_batch(workshop, "rerun-failed", claim, max(len(reopened), 1))

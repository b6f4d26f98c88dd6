"""The nightly gallery: stylize what is pending in the catalog and lay out the results.

Idempotency lives in the catalog, not in Prefect: the flow asks the catalog what is still
to do. A retried flow run (the dashboard's Retry re-runs the same flow-run id) re-opens
only the jobs it attempted that failed; its succeeded jobs are never run again.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run

from db.claims import claim_jobs
from db.runs import jobs_of_flow_run, reset_failed
from db.session import retry_unavailable
from flows.batch import open_workshop, release_jobs_of_ended_flow_run, run_batch
from flows.claiming import narrowed
from flows.report import BatchReport
from tasks.workshop import Workshop


# retries stay 0: users retry by hand (PrefectHQ/prefect#17913)
@flow(name="gallery", retries=0, on_cancellation=[release_jobs_of_ended_flow_run], on_crashed=[release_jobs_of_ended_flow_run])
def gallery(
    limit: int = 50,
    methods: list[str] | None = None,
    tags: list[str] | None = None,
    min_priority: int | None = None,
) -> BatchReport | State:
    """Run up to `limit` pending jobs (optionally filtered), claimed as this host can start them."""
    workshop = open_workshop()
    if flow_run.run_count > 1:
        reopen_failed_jobs_of_this_run(workshop)

    def claim(n: int, only: Sequence[str] | None) -> list[int]:
        return claim_jobs(
            workshop.catalog,
            n,
            workshop.worker,
            workshop.config.lease_seconds,
            methods=narrowed(methods, only),
            tags=tags or None,
            min_priority=min_priority,
        )

    return run_batch(workshop, "gallery", claim, limit)


def reopen_failed_jobs_of_this_run(workshop: Workshop) -> None:
    """On a retry, make this flow run's failed jobs pending again so the claim picks them up."""
    def reopen() -> list[int]:
        attempted = jobs_of_flow_run(workshop.catalog, str(flow_run.id))
        return reset_failed(workshop.catalog, job_ids=attempted) if attempted else []

    reopened = retry_unavailable(reopen, "gallery: re-opening this flow run's failed jobs")
    get_run_logger().info("retry %d of this flow run: re-opened failed jobs %s", flow_run.run_count - 1, reopened)

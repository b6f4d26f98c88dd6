"""Training fast style networks: run the catalog's pending ``itn-train`` jobs.

A training is a catalog job like any other (claimed with a lease, recorded as a Run, rerun after
a failure), so this flow is the gallery's loop restricted to that method: it claims the given
jobs, or the pending training jobs, and runs each as one task. The task resumes from the job's
newest stored checkpoint, so a rerun after a crash continues where the last attempt stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow

from db.claims import claim_jobs
from db.runs import reset_failed
from flows.batch import open_workshop, release_jobs_of_ended_flow_run, run_batch
from flows.claiming import narrowed
from flows.report import BatchReport

TRAINING_METHOD = "itn-train"


# retries stay 0: users retry by hand (PrefectHQ/prefect#17913); a cancelled or crashed run releases its jobs
@flow(name="train_style_model", retries=0, on_cancellation=[release_jobs_of_ended_flow_run], on_crashed=[release_jobs_of_ended_flow_run])
def train_style_model(job_ids: list[int] | None = None, limit: int = 1, rerun_failed: bool = False) -> BatchReport:
    """Train the networks of ``job_ids`` (or of up to ``limit`` pending training jobs).

    ``rerun_failed`` first re-opens those of ``job_ids`` that failed, for a rerun after a fix.
    """
    workshop = open_workshop()
    if rerun_failed and job_ids:
        reset_failed(workshop.catalog, job_ids=job_ids, method=TRAINING_METHOD)

    def claim(n: int, only: Sequence[str] | None) -> list[int]:
        return claim_jobs(
            workshop.catalog,
            n,
            workshop.worker,
            workshop.config.lease_seconds,
            job_ids=job_ids or None,
            methods=narrowed([TRAINING_METHOD], only),
        )

    return run_batch(workshop, "train-style-model", claim, len(job_ids) if job_ids else limit)  # artifact keys allow dashes only

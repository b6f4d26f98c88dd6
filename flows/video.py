"""Stylize videos: claim pending video jobs and run them, one Prefect task per video.

Never a task per frame (a task costs ~50 ms of API work, DESIGN.md section 6): the frames of a
clip are the engine's loop, checkpointed to the store by the task as it goes, so a killed run
resumes at its last finished frame when the job is claimed again (its lease expired, or a rerun).
The nightly gallery runs video jobs too; this flow runs only them, e.g. on demand. A film longer
than a segment is planned into segment jobs that every host's run takes up (tasks.film).
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow

from db.claims import claim_jobs
from flows.batch import open_workshop, release_jobs_of_ended_flow_run, run_batch
from flows.claiming import narrowed
from flows.report import BatchReport
from tasks.video_render import VIDEO_METHODS


# retries stay 0: users retry by hand (PrefectHQ/prefect#17913); a cancelled or crashed run releases its jobs
@flow(name="stylize-video", retries=0, on_cancellation=[release_jobs_of_ended_flow_run], on_crashed=[release_jobs_of_ended_flow_run])
def stylize_video(limit: int = 50, job_ids: list[int] | None = None, tags: list[str] | None = None) -> BatchReport:
    """Run up to `limit` pending video jobs and film segments (optionally these ids and their segments, or
    contents with these tags), claimed as this host can start them."""
    workshop = open_workshop()

    def claim(n: int, only: Sequence[str] | None) -> list[int]:
        return claim_jobs(
            workshop.catalog,
            n,
            workshop.worker,
            workshop.config.lease_seconds,
            job_ids=job_ids or None,
            methods=narrowed(sorted(VIDEO_METHODS), only),
            tags=tags or None,
        )

    return run_batch(workshop, "stylize-video", claim, limit)

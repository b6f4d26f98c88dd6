"""The Prefect tasks: one job per task run, or one batch of jobs that share an optimization;
never finer (a task costs ~50 ms of API work).

Retries are for transient failures only (see tasks.retry). The tag `gpu` marks GPU work
in the UI and lets an operator add a tag concurrency limit; the flow holds the host's
GPU concurrency slots for the batch (flows.batch.gpu_slots).
"""

from __future__ import annotations

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from tasks.batch_job import perform_batch
from tasks.job import JobResult, RunIds, perform_job
from tasks.retry import retry_on_transient
from tasks.workshop import Workshop


@task(
    name="run-job",
    task_run_name="job-{job_id}",
    tags=["gpu"],
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,  # idempotency lives in the catalog, not in Prefect's result cache
    persist_result=False,
)
def run_job(job_id: int, workshop: Workshop) -> JobResult | None:
    """Stylize one catalog job; the Workshop holds the open catalog, store and caches."""
    context = TaskRunContext.get()
    assert context is not None, "run_job runs only as a Prefect task"
    final_attempt = context.task_run.run_count > context.task.retries
    return perform_job(workshop, job_id, _run_ids(), final_attempt=final_attempt, logger=get_run_logger())


@task(
    name="run-job-batch",
    task_run_name="jobs-{job_ids}",
    tags=["gpu"],
    retries=0,  # a job that failed transiently goes back to the flow, which retries it alone with run_job
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_job_batch(job_ids: list[int], workshop: Workshop) -> list[int]:
    """Stylize catalog jobs that share style, size and parameters in one optimization, each
    recorded on its own Run; return the jobs that failed transiently (pending again)."""
    return perform_batch(workshop, job_ids, _run_ids(), logger=get_run_logger())


def _run_ids() -> RunIds:
    context = TaskRunContext.get()
    assert context is not None, "the job tasks run only as Prefect tasks"
    task_run = context.task_run
    return RunIds(flow_run_id=str(task_run.flow_run_id) if task_run.flow_run_id else None, task_run_id=str(task_run.id))


def configured_run_job(workshop: Workshop) -> Task[[int, Workshop], JobResult | None]:
    """`run_job` with the retry count and backoff of this deployment's settings."""
    config = workshop.config
    return run_job.with_options(
        retries=config.task_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=config.retry_delay_seconds),
    )

"""Running a set of claimed jobs and reporting on them: the part gallery and rerun share.

Jobs run concurrently up to the GPU slots. A failed job never stops the others; only
after all are done does the flow run fail, naming each failed job and its reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.states import Cancelled
from prefect.task_runners import ThreadPoolTaskRunner

from db.claims import expire_leases, holders_on_host
from db.runs import jobs_of_flow_run, release_jobs
from db.session import retry_unavailable
from flows.claiming import Claim, Claimer
from flows.film_progress import FilmProgress
from flows.host_slots import POLL_SECONDS, SlotHolder, hold_slots, slot_folder
from flows.report import BatchFailed, BatchReport, report_batch
from tasks.progress import shares_done
from tasks.run_job import configured_run_job, run_job_batch
from tasks.stopping import Interrupted, request_stop, stop_reason, stop_requested
from tasks.workshop import Workshop, WorkshopConfig, workshop_for
from worker_settings import read_worker_settings

PROGRESS_STEP = 5.0  # percent; every update is an API write
PROGRESS_POLL_SECONDS = 5.0  # how often the running jobs' shares are read
SLOT_POLL_SECONDS = 0.5  # how soon a slot freed by one of several running units takes new work


def open_workshop() -> Workshop:
    """Read the settings (flow entry points are where that happens) and open the services."""
    workshop = workshop_for(WorkshopConfig.from_settings(read_worker_settings()))
    get_run_logger().info("using %s", workshop.config.describe())
    return workshop


def run_batch(workshop: Workshop, name: str, claim: Claim, limit: int) -> BatchReport | State:
    """Claim jobs while holding this host's GPU slots, run them, then publish the contact sheet
    and artifacts; raise BatchFailed if any job failed. A stop request (tasks.stopping) ends
    the flow run Cancelled, its unfinished jobs released.

    `claim(n, methods)` takes jobs from the catalog, a unit at a time and up to `limit` in
    all (flows.claiming), only once the slots are held: a waiting flow run never sits on
    leased jobs it cannot start, and the other hosts keep drawing on the same queue.
    """
    logger = get_run_logger()
    claimer = Claimer(workshop, claim, limit)
    try:
        with gpu_slots(workshop):
            retry_unavailable(lambda: take_back_jobs_of_dead_processes(workshop), f"{name}: recovering jobs")
            logger.info("%s: running up to %d jobs on %s, %d at a time", name, limit, workshop.device,
                        workshop.config.gpu_slots)
            try:
                run_jobs(workshop, claimer)
            finally:
                if stop_requested():
                    release_batch(workshop, claimer.claimed)
    except Interrupted:
        pass  # stopped while waiting for the GPU slot: nothing was claimed
    if stop_requested():
        return Cancelled(message=f"{name} stopped by {stop_reason()}; its unfinished jobs are pending again")
    # A retried flow run also reports the jobs its earlier attempts finished.
    earlier = retry_unavailable(lambda: jobs_of_flow_run(workshop.catalog, str(flow_run.id)), f"{name}: reading the batch")
    batch = sorted(set(claimer.claimed) | set(earlier))
    if not batch:
        logger.info("%s: no jobs to run", name)
        return BatchReport(name=name, lines=())
    settings = read_worker_settings()
    report = retry_unavailable(lambda: report_batch(workshop, name, batch, logger, public_url=settings.store_public_url,
                                                    web_url=settings.web_url), f"{name}: reporting the outcomes")
    logger.info("%s; contact sheet %s", report.headline(), report.contact_sheet)
    if report.failed:
        raise BatchFailed(report)
    return report


@contextmanager
def gpu_slots(workshop: Workshop) -> Iterator[None]:
    """Hold this host's GPU slots for the batch, saying whom it waits for while it waits.

    Slots are taken per batch, not per job: the thread pool already caps this flow run at
    `gpu_slots` jobs, and the slots make concurrent flow runs on the same host (a nightly
    run and a rerun under `serve`) wait for each other. They are file locks
    (flows.host_slots), so a killed holder frees them at once.
    """
    logger = get_run_logger()
    host = workshop.host
    holder = SlotHolder(
        pid=os.getpid(),
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        flow_run_name=flow_run.name,
        since=datetime.now(UTC).isoformat(timespec="seconds"),
        folder=os.getcwd(),
    )
    said_why: list[bool] = []

    def on_wait(current: SlotHolder | None, waited: float) -> None:
        held_by = current.describe() if current else "another process"
        logger.info("waiting for GPU slot on %s (held by %s), %.0f s so far", host, held_by, waited)
        if not said_why:  # once: a laptop user does not expect a run of another folder to block this one
            said_why.append(True)
            logger.info("GPU slots are machine-wide: every Atelier run on this machine, whatever its folder or "
                        "catalog, shares the %d slot(s) in %s; to run beside it, raise ATELIER_GPU_SLOTS or give "
                        "this run a slot folder of its own with ATELIER_SLOT_DIR", workshop.config.gpu_slots,
                        workshop.config.slot_dir)

    folder = slot_folder(workshop.config.slot_dir, host)
    with hold_slots(folder, workshop.config.gpu_slots, holder, on_wait) as waited:
        if waited >= POLL_SECONDS:
            logger.info("got the GPU slot on %s after waiting %.1f s", host, waited)
        yield


def take_back_jobs_of_dead_processes(workshop: Workshop) -> None:
    """End the leases of jobs held by processes of this host that have died (killed, out of
    memory), so that this batch's claim takes them up now instead of after their lease.

    Safe because this process holds all of the host's GPU slots: no other batch of this
    host is running, and a worker whose pid is gone from this machine cannot renew its
    lease. The claim then treats them as expired: a started attempt is closed as
    LeaseExpired and counted, a never-started one is not counted. (ATELIER_HOST must name
    one machine: the pids are checked on this one.)
    """
    dead = [worker for worker in holders_on_host(workshop.catalog, workshop.host)
            if worker != workshop.worker and not process_alive(worker.rsplit(":", 1)[1])]
    taken_back = expire_leases(workshop.catalog, dead)
    if taken_back:
        get_run_logger().info("taking up jobs %s of dead processes %s on %s", taken_back, dead, workshop.host)


def process_alive(pid_text: str) -> bool:
    """Whether a process with this pid exists on this machine (an unreadable pid counts as alive)."""
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


def run_jobs(workshop: Workshop, claimer: Claimer) -> None:
    """One task per unit of work, at most `gpu_slots` at once, claimed as slots free up, with a
    live progress artifact.

    A unit is a batch of jobs that share an optimization (same style, size and parameters;
    tasks.batch_job) or a single job. Jobs a batch hands back as transiently failed run again
    alone, with run_job's retries. Outcomes are not collected here: the catalog has them,
    including for jobs whose task crashed before it could return.
    """
    run_job = configured_run_job(workshop)
    slots = workshop.config.gpu_slots
    progress = create_progress_artifact(0.0, description="jobs claimed by this run")
    shown = 0.0
    poll = min(PROGRESS_POLL_SECONDS, workshop.config.lease_seconds / 3)
    with ThreadPoolTaskRunner(max_workers=slots) as runner:

        def submit(unit: list[int]) -> PrefectFuture[Any]:
            if len(unit) > 1:
                get_run_logger().info("jobs %s share one optimization", unit)
                return runner.submit(run_job_batch, {"job_ids": unit, "workshop": workshop})
            return runner.submit(run_job, {"job_id": unit[0], "workshop": workshop})

        films = FilmProgress(workshop)
        futures: dict[PrefectFuture[Any], list[int]] = {}
        try:
            pending: list[PrefectFuture[Any]] = []
            while True:
                while len(pending) < slots and not stop_requested() and (unit := claimer.next_unit()):
                    future = submit(unit)
                    futures[future] = unit
                    pending.append(future)
                    films.started(unit)
                if not pending:
                    break
                # Prefect's wait returns when all are done: with several slots, look often for a free one.
                waited = wait(pending, timeout=poll if len(pending) == 1 else SLOT_POLL_SECONDS)
                pending = list(waited.not_done)
                for future in waited.done:
                    for job_id in transient_failures(future, futures[future]):
                        claimer.put_back([job_id])
                claimer.keep_waiting_leases()
                films.update(now=not pending)  # the last read after this run's units are all done
                # finished jobs count whole; running ones by the share their engine has done
                running_jobs = [job_id for future in pending for job_id in futures[future]]
                claimed = len(claimer.claimed)
                percent = 100.0 * (claimed - len(running_jobs) - sum(map(len, claimer.waiting))
                                   + shares_done(running_jobs)) / claimed
                if percent - shown >= PROGRESS_STEP or (not pending and not claimer.waiting):
                    update_progress_artifact(progress, percent, description=f"{claimed} jobs claimed by this run")
                    shown = percent
        except BaseException as exc:
            # SIGTERM from a worker (Prefect raises it here as TerminationSignal), Ctrl-C:
            # stop the jobs at their next evaluation, or the pool would wait for them to end.
            # An error (the catalog lost while claiming more) lets the running jobs finish and
            # record themselves: a stop request would outlive this run and stop the next run of
            # a long-lived process (`atelier serve`) before it claimed anything.
            if not isinstance(exc, Exception):
                request_stop(f"the flow run is ending ({type(exc).__name__})")
            raise
        finally:
            shares_done(claimer.claimed, forget=True)


def transient_failures(future: PrefectFuture[Any], unit: list[int]) -> list[int]:
    """The jobs a finished batch task handed back to be retried alone (none for a single job)."""
    if len(unit) == 1 or not future.state.is_completed():
        return []
    return list(future.result())


def release_batch(workshop: Workshop, job_ids: list[int]) -> None:
    """After a stop: give back the batch's jobs this worker still holds (claimed but not
    started), pending again and without a counted attempt."""
    released = retry_unavailable(
        lambda: release_jobs(workshop.catalog, "the batch was stopped before this job started",
                             job_ids=job_ids, worker=workshop.worker),
        "releasing the batch's unstarted jobs",
    )
    get_run_logger().info("stopped: released jobs not yet started %s", released)


def release_jobs_of_ended_flow_run(flow: Any, run: FlowRun, state: State) -> None:
    """`on_cancellation` / `on_crashed` hook: give back the jobs of a flow run that will not
    finish them (cancelled from the dashboard or `prefect flow-run cancel`, or crashed).

    The flow run's own process has already stopped its jobs (a cancelling worker sends it
    SIGTERM, which `run_jobs` turns into a stop request). This releases what is left: the
    jobs whose run this flow run has open, from whichever process runs the hook (a worker
    may run it outside the flow run's process), and the jobs this process claimed but never
    started. Released jobs are pending again, with no attempt lost.
    """
    workshop = workshop_for(WorkshopConfig.from_settings(read_worker_settings()))
    reason = f"flow run {run.name} ({run.id}) was {state.name}"
    released = retry_unavailable(
        lambda: release_jobs(workshop.catalog, reason, flow_run_id=str(run.id))
        + release_jobs(workshop.catalog, reason, worker=workshop.worker),
        "releasing the jobs of an ended flow run",
    )
    logging.getLogger("atelier").warning("%s: released jobs %s", reason, sorted(released))

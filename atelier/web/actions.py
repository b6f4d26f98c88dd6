"""Write actions of the gallery: rerunning a batch's failed jobs through the `rerun-failed` deployment.

The app never runs jobs itself (a web process is no GPU worker): it asks the Prefect server
to start a run of the deployment, which a worker or `atelier serve` picks up. Without a
reachable server, it says how to do the same from the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RerunOutcome:
    started: bool
    message: str
    command: str
    flow_run_id: str | None = None


def rerun_failed_jobs(job_ids: Sequence[int]) -> RerunOutcome:
    """Start `rerun-failed` for `job_ids` on the Prefect server, or explain how without one."""
    command = "atelier jobs rerun-failed " + " ".join(f"--job {i}" for i in job_ids)
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return RerunOutcome(False, "No Prefect server is configured (PREFECT_API_URL), so no deployment can run. "
                                   "Run this on a machine that can compute the jobs:", command)
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from flows.deployments import RERUN_FAILED, SERVED_SUFFIX

    # The work-pool deployment (prefect.yaml), else the one `atelier serve` registers.
    names = [f"{RERUN_FAILED}/{RERUN_FAILED}", f"{RERUN_FAILED}/{RERUN_FAILED}{SERVED_SUFFIX}"]
    try:
        for name in names:
            try:
                flow_run = run_deployment(name, parameters={"job_ids": list(job_ids)}, timeout=0)
                break
            except ObjectNotFound:
                continue
        else:
            return RerunOutcome(False, f"The Prefect server has no {' or '.join(names)} deployment. "
                                       "Serve it with `atelier serve`, deploy deployments/prefect.yaml, or run:", command)
    except Exception as exc:  # the server is down or refused: say so and how to go on
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return RerunOutcome(False, f"The Prefect server did not start the rerun-failed deployment ({type(exc).__name__}: "
                                   f"{reason}). Serve it with `atelier serve`, or run:", command)
    return RerunOutcome(True, f"Started flow run {flow_run.name} of rerun-failed for {len(job_ids)} jobs.", command,
                        str(flow_run.id))

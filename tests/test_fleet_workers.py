"""Hosts on Prefect's own machinery: a Prefect server on PostgreSQL, two `prefect worker
start` processes of the `atelier` process pool acting as two hosts (ATELIER_HOST), one
PostgreSQL catalog and one S3 bucket on loopback.

A 40-job gallery runs every job exactly once across the hosts, each host holding only its
own GPU slot; one host is SIGKILLed mid-batch (worker and flow run together, as a lost
machine), and the next run finishes its jobs once their lease expires, with no duplicate
Run or Artifact. And the Prefect server restarting mid-flow loses nothing either.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.host_slots import read_holder, slot_folder
from tests.fixtures.fleet import Fleet, deploy_from_prefect_yaml
from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(600)]

LEASE_SECONDS = 10  # the shortest the settings allow: the killed host's jobs come back after it
SIZES = (32, 34, 36, 38, 40)  # 2 contents x 4 styles x 5 sizes = 40 noop jobs
WAIT_S = 300  # per phase; generous for a shared 2-core machine


def wait_until(condition: Any, what: str, fleet: Fleet, seconds: float = WAIT_S, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.host}\n{w.output()[-3000:]}" for w in fleet.workers)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(poll)
    return result


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def slot_is_held(lock: Path) -> bool:
    """Whether some process holds the slot's lock (probed without keeping it)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def describe_holder(lock: Path) -> str:
    """Who holds the lock and in what state, for a failure message."""
    holder = read_holder(lock)
    if holder is None:
        return "no holder named"
    try:
        status = Path(f"/proc/{holder.pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"{holder}: {exc}"
    return f"{holder}: " + ", ".join(line for line in status if line.startswith(("State:", "Threads:", "PPid:")))


def assert_each_host_holds_only_its_own_slot(slot_dir: Path, hosts: set[str]) -> set[str]:
    """Every held slot of a host is held by a process of that host (by its ATELIER_HOST);
    returns the hosts whose slot is held now."""
    assert {folder.name for folder in slot_dir.iterdir()} <= hosts
    holding = set()
    for host in hosts:
        lock = slot_folder(slot_dir, host) / "slot-0.lock"
        if lock.exists() and slot_is_held(lock):
            holder = read_holder(lock)
            assert holder is not None, f"{lock} is held but names no holder"
            assert environment_of(holder.pid).get("ATELIER_HOST") == host, f"{host}'s slot is held by {holder}"
            holding.add(host)
    return holding


def test_two_hosts_run_every_job_once_and_a_killed_host_loses_nothing(fleet, atelier, postgres_url, s3_store_url, tmp_path):
    from sqlalchemy import func, select

    from db.models import Artifact, Job, Run

    app = atelier(postgres_url, s3_store_url.store_url, s3_store_url.endpoint_url, lease_seconds=LEASE_SECONDS)
    write_gallery_inputs(tmp_path / "inputs", contents=2, styles=4, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", f"size={SIZES[0]}")
    for size in SIZES[1:]:
        app.cli("jobs", "matrix", "--contents", "tag:photo", "--styles", "tag:painting", "--method", "noop",
                "--param", f"size={size}")
    assert len(catalog_rows(app, Job)) == 40
    catalog = app.workshop().catalog
    slot_dir = Path(app.env["ATELIER_SLOT_DIR"])

    deployment_id = deploy_from_prefect_yaml(fleet.server, "nightly-gallery")
    hosts = {}
    for host in ("host-a", "host-b"):  # each host its own input cache; one slot folder, one subfolder per host
        hosts[host] = fleet.start_worker(host, {**app.env, "ATELIER_CACHE_DIR": str(tmp_path / host / "cache")})
    with fleet.server.client() as client:
        first_runs = [client.create_flow_run_from_deployment(deployment_id, parameters={"limit": 20}).id
                      for _ in range(2)]

    def jobs_held_mid_batch(host: str) -> list[int]:
        """The jobs `host` holds while it has already finished some of its batch."""
        with catalog.reader() as session:
            done = session.scalar(select(func.count()).where(Run.host == host, Run.status == "succeeded"))
            held = list(session.scalars(select(Job.id).where(Job.status == "running",
                                                             Job.claimed_by.startswith(f"{host}:"))))
        return held if done and held else []

    wait_until(lambda: jobs_held_mid_batch("host-a"), "host-a to be mid-batch", fleet, poll=0.02)
    holding = assert_each_host_holds_only_its_own_slot(slot_dir, set(hosts))
    fleet.kill_host(hosts["host-a"])
    assert "host-a" in holding, "host-a was mid-batch but held no slot"
    dead_lock = slot_folder(slot_dir, "host-a") / "slot-0.lock"
    assert not slot_is_held(dead_lock), f"the dead host's slot stayed held: {describe_holder(dead_lock)}"
    orphaned = jobs_held_mid_batch("host-a")
    assert orphaned, "host-a finished its batch before it was killed"

    # host-b finishes its own batch meanwhile; host-a's jobs wait for their lease.
    def finished_first_runs() -> list[str]:
        with fleet.server.client() as client:
            states = [client.read_flow_run(run_id).state for run_id in first_runs]
        return [state.type.value for state in states if state.is_final()]

    assert wait_until(finished_first_runs, "host-b's first flow run to end", fleet, poll=0.5) == ["COMPLETED"]
    with catalog.reader() as session:
        assert set(session.scalars(select(Job.id).where(Job.status == "running"))) == set(orphaned)

    def leases_expired() -> bool:  # by the database's clock, a fresh transaction each time
        with catalog.reader() as session:
            return session.scalar(select(func.now() > func.max(Job.lease_expires_at)).where(Job.id.in_(orphaned)))

    wait_until(leases_expired, "the dead host's leases to expire", fleet, poll=0.5)

    with fleet.server.client() as client:
        next_run = client.create_flow_run_from_deployment(deployment_id, parameters={"limit": 40}).id
        wait_until(lambda: client.read_flow_run(next_run).state.is_final(), "the next run to end", fleet, poll=0.5)
        assert client.read_flow_run(next_run).state.is_completed(), hosts["host-b"].output()[-3000:]

    jobs = catalog_rows(app, Job)
    runs = catalog_rows(app, Run)
    artifacts = [a for a in catalog_rows(app, Artifact) if a.kind in ("output", "thumbnail")]
    assert Counter(job.status for job in jobs) == {"succeeded": 40}
    succeeded = Counter(run.job_id for run in runs if run.status == "succeeded")
    assert set(succeeded.values()) == {1} and len(succeeded) == 40, "a job ran more than once, or never"
    assert {run.host for run in runs if run.status == "succeeded"} == {"host-a", "host-b"}
    for run in runs:
        if run.status != "succeeded":  # only the killed host's attempts, closed when their jobs were taken up
            assert (run.host, run.job_id in orphaned, run.error_type) == ("host-a", True, "LeaseExpired")
    runs_per_job = Counter(run.job_id for run in runs)
    assert all(job.attempts == runs_per_job[job.id] for job in jobs), "an attempt was lost or counted twice"
    assert Counter((a.job_id, a.kind) for a in artifacts) == {(job.id, kind): 1 for job in jobs
                                                              for kind in ("output", "thumbnail")}
    assert all(a.run_id in {run.id for run in runs if run.status == "succeeded"} for a in artifacts)
    # Each host kept to its own slot folder and its own input cache.
    assert {folder.name for folder in slot_dir.iterdir()} == {"host-a", "host-b"}
    assert all(any((tmp_path / host / "cache").rglob("*")) for host in hosts)


def test_a_flow_run_rides_out_a_prefect_server_restart(fleet, atelier, postgres_url, s3_store_url, tmp_path):
    """The server goes away mid-batch and comes back on the same port and database: the flow
    run's API calls retry meanwhile (Prefect's client: 5 retries, backoff 2 to 32 s), its jobs
    go on, and it ends Completed with every job done once."""
    from sqlalchemy import func, select

    from db.models import Job, Run

    app = atelier(postgres_url, s3_store_url.store_url, s3_store_url.endpoint_url)
    write_gallery_inputs(tmp_path / "inputs", contents=2, styles=4, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    catalog = app.workshop().catalog
    deployment_id = deploy_from_prefect_yaml(fleet.server, "nightly-gallery")
    fleet.start_worker("host-r", {**app.env, "ATELIER_CACHE_DIR": str(tmp_path / "cache")})
    with fleet.server.client() as client:
        run_id = client.create_flow_run_from_deployment(deployment_id, parameters={"limit": 8}).id

    def some_job_done() -> bool:
        with catalog.reader() as session:
            return bool(session.scalar(select(func.count()).where(Run.status == "succeeded")))

    wait_until(some_job_done, "the batch to be under way", fleet, poll=0.02)
    fleet.server.restart()

    def final_state() -> Any:
        with fleet.server.client() as client:
            state = client.read_flow_run(run_id).state
        return state if state.is_final() else None

    state = wait_until(final_state, "the flow run to end", fleet, poll=0.5)
    assert state.is_completed(), fleet.workers[0].output()[-3000:]
    assert Counter(job.status for job in catalog_rows(app, Job)) == {"succeeded": 8}
    assert Counter(run.status for run in catalog_rows(app, Run)) == {"succeeded": 8}

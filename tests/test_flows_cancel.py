"""A cancelled or crashed flow run gives its jobs back; a stuck job can be released by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.databases import add_jobs
from tests.fixtures.prefect import catalog_rows

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def test_jobs_release_refuses_a_live_lease_unless_forced(atelier, catalog_url, tmp_path):
    from db.claims import claim_jobs
    from db.models import Job, Run
    from db.runs import start_run

    app = atelier(catalog_url, f"file://{tmp_path / 'store'}")
    catalog = app.workshop().catalog
    stuck, done = add_jobs(catalog, 2)
    claim_jobs(catalog, 1, "vanished-worker:42", 600, job_ids=[stuck])
    start_run(catalog, stuck, "vanished-worker:42")

    refused = app.cli("jobs", "release", str(stuck), str(done), expect=1)
    assert "refused: vanished-worker:42 holds it until" in refused.output
    assert f"job {done}: pending: not running" in refused.output
    assert {job.id: job.status for job in catalog_rows(app, Job)} == {stuck: "running", done: "pending"}
    app.cli("jobs", "release", "999", expect=2)

    forced = app.cli("jobs", "release", str(stuck), "--force", expect=0)
    assert f"job {stuck}: released" in forced.output
    job = next(job for job in catalog_rows(app, Job) if job.id == stuck)
    assert (job.status, job.claimed_by, job.attempts - job.uncounted_attempts) == ("pending", None, 0)
    [run] = catalog_rows(app, Run)
    assert (run.status, run.error_type) == ("failed", "Interrupted")


def test_the_cancellation_hook_releases_the_flow_runs_jobs(atelier, catalog_url, tmp_path):
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Cancelled

    from db.claims import claim_jobs
    from db.models import Job
    from db.runs import start_run
    from flows.batch import release_jobs_of_ended_flow_run
    from flows.gallery import gallery

    assert release_jobs_of_ended_flow_run in gallery.on_cancellation_hooks + gallery.on_crashed_hooks
    app = atelier(catalog_url, f"file://{tmp_path / 'store'}")
    workshop = app.workshop()
    started_elsewhere, claimed_here, someone_elses = add_jobs(workshop.catalog, 3)
    flow_run = FlowRun(id=uuid.uuid4(), name="cancelled-owl", flow_id=uuid.uuid4())
    # The flow run's process started one job; the hook may run in another process (a worker).
    claim_jobs(workshop.catalog, 1, "flow-process:7", 600, job_ids=[started_elsewhere])
    start_run(workshop.catalog, started_elsewhere, "flow-process:7", flow_run_id=str(flow_run.id))
    claim_jobs(workshop.catalog, 1, workshop.worker, 600, job_ids=[claimed_here])
    claim_jobs(workshop.catalog, 1, "other-run:9", 600, job_ids=[someone_elses])

    release_jobs_of_ended_flow_run(gallery, flow_run, Cancelled())

    assert {job.id: job.status for job in catalog_rows(app, Job)} == {
        started_elsewhere: "pending", claimed_here: "pending", someone_elses: "running"}


def test_sigterm_to_a_flow_run_process_releases_its_jobs_at_once(prefect_api, atelier, tmp_path):
    """What a worker or `serve` does to cancel a flow run: SIGTERM its process."""
    from db.models import Job, Run
    from tests.fixtures.prefect import create_gallery_jobs, write_gallery_inputs

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", host="cancelled-host")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=32)
    create_gallery_jobs(app, tmp_path / "inputs", "gatys", "size=32", "iterations=100000")
    flow_process = subprocess.Popen(
        [sys.executable, "-c", "from flows.gallery import gallery; gallery()"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_api},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not any(run.status == "running" for run in catalog_rows(app, Run)):
            assert flow_process.poll() is None and time.monotonic() < deadline, "the flow run never started a job"
            time.sleep(0.2)
        started = time.monotonic()
        flow_process.send_signal(signal.SIGTERM)
        flow_process.wait(timeout=60)
        assert time.monotonic() - started < 15
    finally:
        flow_process.kill()
        flow_process.wait()

    jobs = catalog_rows(app, Job)
    assert [(job.status, job.claimed_by, job.attempts - job.uncounted_attempts) for job in jobs] == [
        ("pending", None, 0)] * 2
    [run] = catalog_rows(app, Run)
    assert (run.status, run.error_type) == ("failed", "Interrupted")


@pytest.mark.unit
def test_every_batch_flow_releases_its_jobs_when_cancelled_or_crashed():
    """A cancelled or crashed video or training flow run must give back its jobs like the gallery."""
    from flows.batch import release_jobs_of_ended_flow_run
    from flows.gallery import gallery
    from flows.rerun_failed import rerun_failed
    from flows.train_style_model import train_style_model
    from flows.video import stylize_video

    for flow in (gallery, rerun_failed, stylize_video, train_style_model):
        assert release_jobs_of_ended_flow_run in flow.on_cancellation_hooks, flow.name
        assert release_jobs_of_ended_flow_run in flow.on_crashed_hooks, flow.name

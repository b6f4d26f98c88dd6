"""Recovery paths of the gallery: the dashboard's Retry, a killed worker, an unreachable store.

Each ends with every job succeeded exactly once: one succeeded Run and one output per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def succeeded_once(app) -> None:
    """Every job succeeded, with exactly one succeeded run and one output artifact each."""
    from db.models import Artifact, Job, Run

    jobs = catalog_rows(app, Job)
    assert {job.status for job in jobs} == {"succeeded"}
    succeeded = Counter(run.job_id for run in catalog_rows(app, Run) if run.status == "succeeded")
    outputs = Counter(a.job_id for a in catalog_rows(app, Artifact) if a.kind == "output")
    assert succeeded == outputs == {job.id: 1 for job in jobs}


def test_dashboard_retry_reruns_only_jobs_not_yet_succeeded(prefect_api, atelier, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import AwaitingRetry

    from db.models import Artifact, Image, Run
    from flows.gallery import gallery

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    inputs = write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=48")
    spoiled = next(image for image in catalog_rows(app, Image) if image.source_name == "strokes-1.png")
    app.workshop().store.path_for_uri(spoiled.uri).write_bytes(b"garbage")

    # Only runs of a deployment can be retried from the dashboard; `serve` or a worker would
    # execute them with the same engine call as here, in a subprocess.
    with get_client(sync_client=True) as client:
        deployment_id = gallery.to_deployment(name="dashboard-retry").apply()
        flow_run_id = client.create_flow_run_from_deployment(deployment_id).id
        first = run_flow(gallery, flow_run=client.read_flow_run(flow_run_id), return_type="state")
    assert first.is_failed()
    runs_before = catalog_rows(app, Run)
    done_before = {run.job_id: run.id for run in runs_before if run.status == "succeeded"}
    assert len(done_before) == 1
    outputs_before = [a.id for a in catalog_rows(app, Artifact)]
    app.cli("catalog", "add", str(inputs["strokes-1"]), "--role", "style")

    # What the dashboard's Retry button does: Scheduled, named AwaitingRetry ...
    with get_client(sync_client=True) as client:
        accepted = client.set_flow_run_state(flow_run_id, AwaitingRetry())
        assert accepted.status.value == "ACCEPT"
        # ... then the worker (or `serve`) executes the same flow run id again.
        retried = run_flow(gallery, flow_run=client.read_flow_run(flow_run_id), return_type="state")
        assert client.read_flow_run(flow_run_id).run_count == 2

    assert retried.is_completed()
    succeeded_once(app)
    runs_after = catalog_rows(app, Run)
    for job_id, run_id in done_before.items():
        assert [run.id for run in runs_after if run.job_id == job_id] == [run_id]
    assert set(outputs_before) <= {a.id for a in catalog_rows(app, Artifact)}
    assert len(catalog_rows(app, Artifact)) == len(outputs_before) + 2  # the one rerun job's output + thumbnail
    assert retried.result().contact_sheet  # the retried run reports both jobs of the night


def test_killed_worker_job_is_taken_up_after_its_lease_expires(prefect_api, atelier, tmp_path):
    from db.models import Job, Run
    from flows.gallery import gallery

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", lease_seconds=10)
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1)
    create_gallery_jobs(app, tmp_path / "inputs", "gatys", "size=64", "iterations=30")
    worker = subprocess.Popen(
        [sys.executable, "-c", "from flows.gallery import gallery; gallery()"],
        cwd=REPO, env={**os.environ, "PREFECT_API_URL": prefect_api}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(run.status == "running" for run in catalog_rows(app, Run)):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never started its job"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    [job] = catalog_rows(app, Job)
    assert job.status == "running"
    while job.lease_expires_at > datetime.now(UTC):
        time.sleep(0.5)
        [job] = catalog_rows(app, Job)

    assert gallery(return_state=True).is_completed()

    succeeded_once(app)
    [dead, finished] = catalog_rows(app, Run)
    assert (dead.status, dead.error_type) == ("failed", "LeaseExpired")
    assert finished.status == "succeeded"


def test_storage_down_fails_cleanly_after_retries_then_rerun_succeeds(prefect_api, atelier, s3_store_url, s3_server, tmp_path):
    from db.jobs import job_spec
    from db.models import Artifact, Job, Run
    from flows.gallery import gallery
    from flows.rerun_failed import rerun_failed

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", s3_store_url.store_url, s3_store_url.endpoint_url, task_retries=2)
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=48")
    workshop = app.workshop()
    [job] = catalog_rows(app, Job)
    with workshop.catalog.reader() as session:  # inputs already cached: the outage hits the upload
        spec = job_spec(session, job.id)
    for ref in (spec.content, *spec.styles):
        workshop.inputs.fetch(ref.uri, ref.sha256)

    with s3_server.down():
        state = gallery(return_state=True)

    assert state.is_failed()
    [job] = catalog_rows(app, Job)
    assert (job.status, job.last_error_type) == ("failed", "StorageUnavailable")
    runs = catalog_rows(app, Run)
    assert [(run.status, run.error_type) for run in runs] == [("failed", "StorageUnavailable")] * 3  # 2 retries
    assert catalog_rows(app, Artifact) == []

    assert rerun_failed(return_state=True).is_completed()
    succeeded_once(app)

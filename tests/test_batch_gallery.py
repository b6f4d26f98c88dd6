"""The gallery batches jobs that share style, size and parameters; each job keeps its own Run.

Real Prefect, a SQLite catalog and a folder store. One content's stored object is spoiled after
registration: its job fails alone, and the batch's other jobs complete, each recorded once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def task_runs_of(flow_run_id: object) -> list[object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def test_gallery_runs_a_style_group_as_one_batch_and_one_run_per_job(prefect_api, atelier, tmp_path: Path) -> None:
    from db.models import Artifact, Image, Job, Run
    from flows.gallery import gallery

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=3, styles=1)
    create_gallery_jobs(app, tmp_path / "inputs", "gatys", "size=40", "iterations=4")
    spoiled = next(image for image in catalog_rows(app, Image) if image.source_name == "coffee.png")
    Path(spoiled.uri.removeprefix("file://")).write_bytes(b"not the photo")

    state = gallery(limit=50, return_state=True)

    assert state.is_failed()  # the spoiled job failed; the flow run says so after all jobs ran
    flow_run_id = state.state_details.flow_run_id
    tasks = task_runs_of(flow_run_id)
    assert [t.name.split("-[")[0] for t in tasks if t.name.startswith("jobs-")] == ["jobs"]
    assert not [t for t in tasks if t.name.startswith("job-")]  # no job ran as a task of its own
    batch_task = next(t for t in tasks if t.name.startswith("jobs-"))

    jobs = catalog_rows(app, Job)
    assert Counter(job.status for job in jobs) == {"succeeded": 2, "failed": 1}
    failed = next(job for job in jobs if job.status == "failed")
    assert failed.last_error_type == "ChecksumMismatch" and failed.content_id == spoiled.id
    runs = catalog_rows(app, Run)
    assert Counter(run.job_id for run in runs) == {job.id: 1 for job in jobs}  # one Run per job, exactly once
    for run in runs:
        assert run.task_run_id == str(batch_task.id) and run.flow_run_id == str(flow_run_id)
    succeeded = [run for run in runs if run.status == "succeeded"]
    for run in succeeded:
        assert run.metrics["batch_size"] == 2 and run.metrics["iterations"] == 4
        assert {"load", "compute", "upload"} <= set(run.timings)
    artifacts = catalog_rows(app, Artifact)
    outputs = [a for a in artifacts if a.kind == "output"]
    assert len(outputs) == 2 and len({a.sha256 for a in outputs}) == 2  # each job its own picture
    assert {a.run_id for a in artifacts} == {run.id for run in succeeded}

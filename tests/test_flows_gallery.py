"""The gallery and rerun-failed flows end to end: real Prefect, PostgreSQL or SQLite, S3 on loopback.

The bucket holds a style whose object was overwritten after registration (a failure the
catalog's checks could not catch): its jobs fail with the checksum mismatch, all others
complete, and after the original is added again `rerun_failed` completes the rest
without redoing or duplicating anything.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TINY_GATYS = ("size=64", "iterations=3")


def flow_run_artifacts(flow_run_id: object) -> list[object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


@pytest.mark.postgres
def test_gallery_with_a_corrupt_style_then_rerun_failed(prefect_api, atelier, postgres_url, s3_store_url, s3_server, tmp_path):
    from db.models import Artifact, Image, Job, Run
    from flows.gallery import gallery
    from flows.report import BatchFailed
    from flows.rerun_failed import rerun_failed

    app = atelier(postgres_url, s3_store_url.store_url, s3_store_url.endpoint_url)
    inputs = write_gallery_inputs(tmp_path / "inputs")
    create_gallery_jobs(app, tmp_path / "inputs", "gatys", *TINY_GATYS)
    store = app.workshop().store
    spoiled = next(image for image in catalog_rows(app, Image) if image.source_name == "strokes-1.png")
    spoiled_key = spoiled.uri.removeprefix(f"s3://{s3_store_url.bucket}/")
    s3_server.client().put_object(Bucket=s3_store_url.bucket, Key=spoiled_key, Body=b"not the painting")

    state = gallery(limit=50, return_state=True)

    assert state.is_failed()
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, BatchFailed)
    report = failure.report
    jobs = {job.id: job for job in catalog_rows(app, Job)}
    statuses = Counter(job.status for job in jobs.values())
    assert statuses == {"succeeded": 4, "failed": 2}
    for job in jobs.values():
        if job.status == "failed":
            assert job.last_error_type == "ChecksumMismatch"
            assert spoiled_key in job.last_error_message
    runs = catalog_rows(app, Run)
    succeeded_runs = [run for run in runs if run.status == "succeeded"]
    assert len(succeeded_runs) == 4
    for run in succeeded_runs:
        assert run.params["size"] == 64 and run.seed == run.params["seed"]
        assert {"atelier", "torch", "torchvision", "weights_sha256"} <= set(run.versions)
        assert run.device.startswith("cpu") and run.host
        assert {"load", "compute", "upload"} <= set(run.timings)
        assert run.flow_run_id == str(state.state_details.flow_run_id) and run.task_run_id
        assert "ssim_to_content" in run.metrics
    first_artifacts = catalog_rows(app, Artifact)
    assert Counter(a.kind for a in first_artifacts) == {"output": 4, "thumbnail": 4}
    assert all(store.exists(a.uri) for a in first_artifacts)
    assert report.contact_sheet and store.exists(report.contact_sheet)
    prefect_artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert {a.type for a in prefect_artifacts} >= {"markdown", "table", "progress"}
    summary = next(a for a in prefect_artifacts if a.type == "markdown")
    assert report.contact_sheet in summary.data and "ChecksumMismatch" in summary.data

    # The curator adds the original again: the catalog re-uploads the object it lost.
    restored = app.cli("catalog", "add", str(inputs["strokes-1"]), "--role", "style")
    assert "restored" in restored.output
    rerun = rerun_failed(return_state=True)

    assert rerun.is_completed()
    assert Counter(job.status for job in catalog_rows(app, Job)) == {"succeeded": 6}
    runs_after = catalog_rows(app, Run)
    for run in succeeded_runs:  # no job that had succeeded ran again
        assert [r.id for r in runs_after if r.job_id == run.job_id] == [run.id]
    artifacts_after = catalog_rows(app, Artifact)
    assert Counter(a.kind for a in artifacts_after) == {"output": 6, "thumbnail": 6}
    assert {a.id for a in first_artifacts} <= {a.id for a in artifacts_after}

    again = rerun_failed(return_state=True)  # nothing failed is left: no work twice
    assert again.is_completed() and again.result().lines == ()
    assert len(catalog_rows(app, Run)) == len(runs_after)

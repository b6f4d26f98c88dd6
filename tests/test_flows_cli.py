"""The batch commands' contract: a summary, exit 1 when a job failed, 0 when all succeeded;
and the deployments file agrees with what `atelier serve` serves."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_gallery_run_and_rerun_failed_print_a_summary_and_exit_nonzero_on_failure(prefect_api, atelier, tmp_path):
    from db.jobs import add_job
    from db.models import Image

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=48")
    # A job whose parameters the engine refuses (written past the CLI's validation) fails at
    # once, with its reason, while the other job completes.
    images = {image.source_name: image.id for image in catalog_rows(app, Image)}
    with app.workshop().catalog.session() as session:
        add_job(session, content_id=images["astronaut.png"], style_ids=[images["strokes-0.png"]], method="noop",
                params={"size": 48, "colour": "blue"})

    result = app.cli("gallery", "run", "--limit", "10", expect=1)
    assert "1 of 2 jobs succeeded" in result.output
    assert "InvalidInputError" in result.output and "colour" in result.output
    assert "contact sheet:" in result.output

    rerun = app.cli("jobs", "rerun-failed", "--error-contains", "colour", expect=1)
    assert "0 of 1 jobs succeeded" in rerun.output

    nothing = app.cli("jobs", "rerun-failed", "--method", "gatys", expect=0)
    assert "0 of 0 jobs succeeded" in nothing.output


def test_prefect_yaml_matches_the_served_deployments():
    from flows.deployments import (
        NIGHTLY_GALLERY, RERUN_FAILED, SERVED_SUFFIX, STYLIZE_VIDEO, TRAIN_STYLE_MODEL, served_deployments,
    )

    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"]}
    served = {d.name.removesuffix(SERVED_SUFFIX): d for d in served_deployments("0 2 * * *", "UTC")}
    assert set(declared) == set(served) == {NIGHTLY_GALLERY, RERUN_FAILED, STYLIZE_VIDEO, TRAIN_STYLE_MODEL}
    for name, deployment in declared.items():
        assert deployment["work_pool"]["name"] == "atelier"
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, function).name == served[name].flow_name
        assert set(deployment.get("parameters", {})) <= set(served[name]._parameter_openapi_schema.properties)
    assert declared[NIGHTLY_GALLERY]["schedules"][0]["cron"] == "0 2 * * *"
    assert "schedules" not in declared[RERUN_FAILED]
    assert "schedules" not in declared[STYLIZE_VIDEO]


@pytest.mark.integration
def test_serve_leaves_the_work_pool_deployments_alone(prefect_api):
    """`serve` registers its deployments (what `prefect.serve` does: apply each); the work-pool
    deployments of prefect.yaml keep their pool and their working-directory step."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from flows.deployments import served_deployments

    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="atelier", type="process"))
        except ObjectAlreadyExists:
            pass
        pool_deployments = {}
        for declared in spec["deployments"]:
            path, function = declared["entrypoint"].split(":")
            flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
            pool_deployments[(flow.name, declared["name"])] = client.create_deployment(
                flow_id=client.create_flow(flow), name=declared["name"], work_pool_name="atelier",
                entrypoint=declared["entrypoint"], pull_steps=pull)
        served_ids = {deployment.apply() for deployment in served_deployments("0 2 * * *", "UTC")}

        assert not served_ids & set(pool_deployments.values())
        for (flow_name, name), deployment_id in pool_deployments.items():
            kept = client.read_deployment_by_name(f"{flow_name}/{name}")
            assert (kept.id, kept.work_pool_name, kept.pull_steps) == (deployment_id, "atelier", pull)

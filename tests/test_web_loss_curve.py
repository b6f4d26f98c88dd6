"""A real job records its loss curve on its Run: one point per evaluation, losses falling."""

from __future__ import annotations

import logging

import pytest

from tests.fixtures.images import draw_strokes, skimage_image

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_gatys_job_records_its_loss_curve(atelier, tmp_path):
    from db.claims import claim_jobs
    from db.queries import Filters, list_runs, run_loss_curve
    from tasks.job import RunIds, perform_job

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    skimage_image("astronaut", 48).save(tmp_path / "photo.png")
    draw_strokes(48, 48).save(tmp_path / "strokes.png")
    app.cli("catalog", "add", str(tmp_path / "photo.png"), "--role", "content")
    app.cli("catalog", "add", str(tmp_path / "strokes.png"), "--role", "style")
    app.cli("jobs", "add", "--content", "photo", "--style", "strokes", "--method", "gatys",
            "--param", "size=48", "--param", "iterations=8")
    workshop = app.workshop()
    [job_id] = claim_jobs(workshop.catalog, 1, workshop.worker, 600)

    perform_job(workshop, job_id, RunIds(None, None), final_attempt=True, logger=logging.getLogger("test"))

    with workshop.catalog.reader() as session:
        [run] = list_runs(session, Filters())
        curve = run_loss_curve(session, run["id"])
    assert "loss_curve" not in run["metrics"]  # listings stay light
    assert curve["evaluation"] == list(range(1, 9))
    assert min(curve["total"]) < curve["total"][0] / 2  # the optimization made progress
    assert min(curve["total"]) == pytest.approx(run["metrics"]["losses"]["total"], rel=1e-6)  # the best one is kept

"""A real job records its loss curve on its Run: one point per evaluation, losses falling."""

from __future__ import annotations

import pytest

from tests.fixtures.prefect import run_pending_job, tiny_gatys_job

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_gatys_job_records_its_loss_curve(atelier, tmp_path):
    from db.queries import Filters, list_runs, run_loss_curve

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    tiny_gatys_job(app, tmp_path, "iterations=8")

    run_pending_job(app)

    workshop = app.workshop()
    with workshop.catalog.reader() as session:
        [run] = list_runs(session, Filters())
        curve = run_loss_curve(session, run["id"])
    assert "loss_curve" not in run["metrics"]  # listings stay light
    assert curve["evaluation"] == list(range(1, 9))
    assert min(curve["total"]) < curve["total"][0] / 2  # the optimization made progress
    assert min(curve["total"]) == pytest.approx(run["metrics"]["losses"]["total"], rel=1e-6)  # the best one is kept

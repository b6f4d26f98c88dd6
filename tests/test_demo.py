"""`atelier demo --data DIR` on the embedded defaults; a second run reuses the catalog and does nothing twice."""

from __future__ import annotations

import pytest

from tests.fixtures.prefect import catalog_rows, write_gallery_inputs

pytestmark = pytest.mark.e2e


def test_demo_runs_once_then_reuses_the_catalog(prefect_api, atelier, tmp_path):
    from db.models import Artifact, Job, Run

    app = atelier(f"sqlite:///{tmp_path / '.atelier' / 'catalog.db'}", f"file://{tmp_path / '.atelier' / 'artifacts'}")
    write_gallery_inputs(tmp_path / "mine", contents=1, styles=1)

    quick = ("--data", str(tmp_path / "mine"), "--size", "48", "--iterations", "2", "--itn-steps", "2")
    first = app.cli("demo", *quick)
    assert "gallery: 2 of 2 jobs succeeded" in first.output and "contact sheet:" in first.output
    assert "gallery: 1 of 1 jobs succeeded" in first.output  # the itn job, with the model trained once
    jobs = catalog_rows(app, Job)
    assert {job.params.get("preserve_color") for job in jobs if job.method == "gatys"} == {None, "luminance"}
    assert sorted(job.method for job in jobs) == ["gatys", "gatys", "itn", "itn-train"]
    runs, artifacts = len(catalog_rows(app, Run)), len(catalog_rows(app, Artifact))

    second = app.cli("demo", *quick)
    assert "nothing left to do" in second.output and "catalog: demo jobs" in second.output
    assert (len(catalog_rows(app, Run)), len(catalog_rows(app, Artifact))) == (runs, artifacts)

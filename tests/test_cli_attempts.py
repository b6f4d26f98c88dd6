"""`jobs ls` and `jobs show --json` count every attempt a job had, across reruns."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.databases import add_jobs

pytestmark = pytest.mark.integration


def test_jobs_ls_counts_the_attempts_of_every_rerun(atelier, catalog_url, tmp_path):
    from db.claims import claim_jobs
    from db.runs import fail_run, reset_failed, start_run

    app = atelier(catalog_url, f"file://{tmp_path / 'store'}")
    catalog = app.workshop().catalog
    (job,) = add_jobs(catalog, 1, max_attempts=1)
    for attempt in range(3):
        if attempt:
            reset_failed(catalog, job_ids=[job])
        claim_jobs(catalog, 1, "w", 60)
        fail_run(catalog, start_run(catalog, job, "w"), "w", error_type="InvalidInputError", message="bad")

    listed = app.cli("jobs", "ls")
    shown = json.loads(app.cli("jobs", "show", str(job), "--json").output)

    assert " 3/3 " in listed.output  # 3 made, 3 allowed so far (1 per batch: the first and two reruns)
    assert shown["attempts"] == 3 and [run["attempt"] for run in shown["runs"]] == [1, 2, 3]

"""A worker that loses the catalog mid-batch: every PostgreSQL connection of the catalog is
killed (pg_terminate_backend) and none is let back in for longer than the worker retries.
Its jobs fail as transient or keep their lease until it runs out; the next run's claim takes
them up. In the end every job succeeded once, with its attempts counted once and its
artifacts recorded once: nothing lost, nothing double-counted."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from db.session import UNAVAILABLE_RETRY_DELAYS_S
from tests.fixtures.databases import _admin_connect
from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

LEASE_SECONDS = 10
# Longer than the worker's own retries of a statement, twice over: the job's task is retried once
# (task_retries=1) and that attempt retries its statements again; an outage shorter than both let
# the retry find the catalog back, and the first batch end Completed (seen once in a full suite).
OUTAGE_S = 2 * sum(UNAVAILABLE_RETRY_DELAYS_S) + 6


@contextmanager
def catalog_lost_at(engine, database: str, statement_prefix: str) -> Iterator[threading.Event]:
    """When the worker is about to run the first statement starting with `statement_prefix`,
    refuse new connections to `database` and kill every open one, for OUTAGE_S; the event
    is set once the database is back."""
    from sqlalchemy import event

    back = threading.Event()
    lost = threading.Event()

    def allow(allowed: bool) -> None:
        with _admin_connect() as admin:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')

    def restore() -> None:
        allow(True)
        back.set()

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if lost.is_set() or not statement.startswith(statement_prefix):
            return
        lost.set()
        allow(False)
        with _admin_connect() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", [database])
        threading.Timer(OUTAGE_S, restore).start()

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield back
    finally:
        event.remove(engine, "before_cursor_execute", before)
        if lost.is_set():
            back.wait(OUTAGE_S + 10)
        allow(True)


def test_a_worker_that_loses_the_catalog_loses_and_double_counts_nothing(prefect_on_postgres_api, atelier, postgres_url, tmp_path):
    from sqlalchemy.engine import make_url

    from db.models import Artifact, Job, Run
    from flows.gallery import gallery

    app = atelier(postgres_url, f"file://{tmp_path / 'store'}", lease_seconds=LEASE_SECONDS, gpu_slots=2,
                  task_retries=1)
    write_gallery_inputs(tmp_path / "inputs", contents=2, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    engine = app.workshop().catalog.engine

    with catalog_lost_at(engine, make_url(postgres_url).database, "INSERT INTO artifacts") as back:
        first = gallery(return_state=True)
    assert back.is_set(), "the catalog was never lost"
    assert not first.is_completed(), "a batch that lost its catalog cannot have recorded every job"
    jobs = catalog_rows(app, Job)
    assert any(job.status != "succeeded" for job in jobs)

    # The next run, once the lost jobs' leases have run out, takes them up.
    time.sleep(LEASE_SECONDS + 1)
    assert gallery(return_state=True).is_completed()

    jobs, runs = catalog_rows(app, Job), catalog_rows(app, Run)
    assert Counter(job.status for job in jobs) == {"succeeded": 4}
    assert Counter(run.job_id for run in runs if run.status == "succeeded") == {job.id: 1 for job in jobs}
    lost_attempts = {run.error_type for run in runs if run.status != "succeeded"}
    assert lost_attempts and lost_attempts <= {"CatalogUnavailable", "LeaseExpired"}
    assert all(run.status != "running" for run in runs), "a run was left open"
    runs_per_job = Counter(run.job_id for run in runs)
    assert all(job.attempts - job.uncounted_attempts == runs_per_job[job.id] for job in jobs), \
        [(job.id, job.attempts, job.uncounted_attempts, runs_per_job[job.id]) for job in jobs]
    artifacts = [a for a in catalog_rows(app, Artifact) if a.kind in ("output", "thumbnail")]
    assert Counter((a.job_id, a.kind) for a in artifacts) == {(job.id, kind): 1 for job in jobs
                                                              for kind in ("output", "thumbnail")}

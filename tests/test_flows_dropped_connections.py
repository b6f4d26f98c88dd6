"""The catalog's PostgreSQL connections dropped (pg_terminate_backend) at the worst moments:
every attempt still ends in a final state, and the claim and report phases retry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.fixtures.databases import _admin_connect
from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@contextmanager
def drop_connection_at(engine, statement_matches: Callable[[str], bool]) -> Iterator[list[str]]:
    """Terminate the server process of the connection about to run the first statement that
    matches, as a server restart or an operator would; yields the statements it dropped."""
    from sqlalchemy import event

    dropped: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if not dropped and statement_matches(statement):
            dropped.append(statement)
            with _admin_connect() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [cursor.connection.info.backend_pid])

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield dropped
    finally:
        event.remove(engine, "before_cursor_execute", before)


def terminate_every_connection_to(database: str) -> int:
    with _admin_connect() as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchall())


def test_a_connection_dropped_during_the_final_commit_leaves_no_run_open(prefect_api, atelier, postgres_url, tmp_path):
    from db.models import Job, Run
    from flows.gallery import gallery

    app = atelier(postgres_url, f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1, side=32)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")

    with drop_connection_at(app.workshop().catalog.engine, lambda s: s.startswith("INSERT INTO artifacts")) as dropped:
        state = gallery(return_state=True)

    assert dropped, "the final commit never ran"
    assert state.is_completed()
    runs = catalog_rows(app, Run)
    assert [(run.status, run.finished_at is not None) for run in runs] == [("failed", True), ("succeeded", True)]
    assert runs[0].error_type == "CatalogUnavailable"
    [job] = catalog_rows(app, Job)
    assert job.status == "succeeded"


def test_dropped_connections_before_and_during_the_claim_are_retried(prefect_api, atelier, postgres_url, tmp_path):
    from sqlalchemy.engine import make_url

    from db.models import Job, Run
    from flows.gallery import gallery

    app = atelier(postgres_url, f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1, side=32)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    catalog_rows(app, Job)  # the pool now holds an idle connection, as while a run waits for its GPU slot
    assert terminate_every_connection_to(make_url(postgres_url).database) >= 1

    claim = lambda s: s.startswith("WITH picked AS")  # noqa: E731 - the claim's UPDATE ... RETURNING
    with drop_connection_at(app.workshop().catalog.engine, claim) as dropped:
        state = gallery(return_state=True)

    assert dropped, "the claim never ran"
    assert state.is_completed()
    [job] = catalog_rows(app, Job)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert [run.status for run in catalog_rows(app, Run)] == ["succeeded"]

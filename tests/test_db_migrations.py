"""Migrations: an empty database upgrades to head, the models match it, and a stale
schema is reported with the command that fixes it."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db.errors import SchemaOutOfDate
from db.migrate import head_revisions, upgrade
from db.models import Base
from db.session import make_engine, open_catalog

pytestmark = pytest.mark.integration


def test_upgrade_from_empty_to_head_matches_the_models(empty_database_url):
    before, after = upgrade(empty_database_url)
    assert before == set() and after == head_revisions()

    engine = make_engine(empty_database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []
    open_catalog(empty_database_url).dispose()  # the schema check passes


def test_a_database_without_schema_asks_for_db_upgrade(empty_database_url):
    engine = make_engine(empty_database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE unrelated (x integer)")
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="atelier db upgrade"):
        open_catalog(empty_database_url, create_if_empty=True)


def test_a_schema_from_a_newer_atelier_is_refused(empty_database_url):
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="newer Atelier"):
        open_catalog(empty_database_url)


def test_an_empty_catalog_is_created_on_request(empty_database_url):
    catalog = open_catalog(empty_database_url, create_if_empty=True)
    catalog.dispose()
    open_catalog(empty_database_url).dispose()


@pytest.mark.unit
def test_the_light_schema_check_agrees_with_alembic():
    """The start-up path reads the scripts' heads without Alembic; they must be Alembic's heads."""
    from db.migrate import head_revisions, script_heads

    assert set(script_heads()) == head_revisions()


def test_0003_counts_the_attempts_a_rerun_had_reset_and_keeps_their_budget(empty_database_url):
    upgrade(empty_database_url, "0002")
    engine = make_engine(empty_database_url)
    with engine.begin() as connection:  # a job with three runs, whose rerun had reset its counter to 1
        for statement in (
            "INSERT INTO images (id, sha256, role, width, height, format, bytes, uri, created_at) "
            "VALUES (1, 'aa', 'content', 8, 8, 'PNG', 1, 'file:///a.png', CURRENT_TIMESTAMP)",
            "INSERT INTO jobs (id, content_id, method, params, priority, status, attempts, max_attempts, "
            "idempotency_key, created_at, updated_at) VALUES (1, 1, 'noop', '{}', 0, 'running', 1, 3, 'k', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            *(
                "INSERT INTO runs (job_id, attempt, status, params, versions, timings, metrics, started_at, worker) "
                f"VALUES (1, {attempt}, 'failed', '{{}}', '{{}}', '{{}}', '{{}}', CURRENT_TIMESTAMP, 'w')"
                for attempt in (1, 2, 3)
            ),
        ):
            connection.exec_driver_sql(statement)
    upgrade(empty_database_url)
    with engine.begin() as connection:
        counts = connection.exec_driver_sql("SELECT attempts, uncounted_attempts FROM jobs WHERE id = 1").one()
    engine.dispose()
    assert tuple(counts) == (3, 2)  # 3 made, 1 charged against max_attempts: the budget it had

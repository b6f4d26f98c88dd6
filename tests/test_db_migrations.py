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

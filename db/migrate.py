"""Alembic, driven from code: upgrade a catalog and check that its schema is current.

The migration scripts ship inside the package (db/migrations), so an installed Atelier
can upgrade a database without an alembic.ini in the working directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from db.errors import SchemaOutOfDate
from db.session import Catalog, make_catalog, translate_unavailable
from redaction import mask_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(catalog: Catalog | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; env.py reuses `catalog`'s engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if catalog is not None:
        config.attributes["engine"] = catalog.engine
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(catalog: Catalog) -> set[str]:
    with translate_unavailable(catalog.url), catalog.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def ensure_current(catalog: Catalog) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest migration."""
    current, heads = current_revisions(catalog), head_revisions()
    if current == heads:
        return
    where = mask_url(catalog.url)
    if not current:
        raise SchemaOutOfDate(f"the catalog at {where} has no schema yet: run `atelier db upgrade`")
    if not current <= _known_revisions():
        raise SchemaOutOfDate(
            f"the catalog at {where} was migrated by a newer Atelier ({', '.join(sorted(current))}); upgrade Atelier"
        )
    raise SchemaOutOfDate(
        f"the catalog schema at {where} is out of date ({', '.join(sorted(current))} -> "
        f"{', '.join(sorted(heads))}): run `atelier db upgrade`"
    )


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def upgrade_catalog(catalog: Catalog, revision: str = "head") -> None:
    with translate_unavailable(catalog.url):
        command.upgrade(alembic_config(catalog), revision)


def upgrade(url: str, revision: str = "head") -> tuple[set[str], set[str]]:
    """Migrate the database at `url`; returns the revisions before and after."""
    catalog = make_catalog(url)
    try:
        before = current_revisions(catalog)
        upgrade_catalog(catalog, revision)
        return before, current_revisions(catalog)
    finally:
        catalog.dispose()

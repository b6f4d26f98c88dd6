"""Alembic, driven from code: upgrade a catalog and check that its schema is current.

The migration scripts ship inside the package (db/migrations), so an installed Atelier
can upgrade a database without an alembic.ini in the working directory.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from db.errors import SchemaOutOfDate
from db.session import Catalog, make_catalog, translate_unavailable
from redaction import mask_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(catalog: Catalog | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; env.py reuses `catalog`'s engine."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if catalog is not None:
        config.attributes["engine"] = catalog.engine
    return config


def head_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(catalog: Catalog) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with translate_unavailable(catalog.url), catalog.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


@lru_cache(maxsize=1)
def script_heads() -> frozenset[str]:
    """The newest revisions of the packaged migrations, read from each script's `revision` and
    `down_revision` assignments: every command checks the schema, and importing Alembic to do
    so would cost a quarter of a second of start-up. `head_revisions` is Alembic's answer."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for node in ast.parse(script.read_text()).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if not isinstance(target, ast.Name) or node.value is None:
                continue
            if target.id == "revision":
                revisions.add(ast.literal_eval(node.value))
            elif target.id == "down_revision":
                value = ast.literal_eval(node.value)
                parents.update([value] if isinstance(value, str) else value or ())
    return frozenset(revisions - parents)


def stamped_revisions(catalog: Catalog) -> set[str]:
    """The revisions recorded in the database's alembic_version table (empty without one)."""
    with translate_unavailable(catalog.url), catalog.engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return set()
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))


def ensure_current(catalog: Catalog) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest migration.

    The usual case (current) is answered without importing Alembic; Alembic explains the rest.
    """
    if stamped_revisions(catalog) == script_heads():
        return
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
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def upgrade_catalog(catalog: Catalog, revision: str = "head") -> None:
    from alembic import command

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

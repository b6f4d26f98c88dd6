"""Alembic environment: migrate the engine `db.migrate` hands over, or ATELIER_DATABASE_URL.

Batch mode on SQLite lets later migrations alter columns (SQLite rebuilds the table).
"""

from __future__ import annotations

import os

from alembic import context

from db.models import Base, UTCDateTime
from db.session import make_engine


def _engine():
    engine = context.config.attributes.get("engine")
    if engine is None:
        url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
            "ATELIER_DATABASE_URL", "sqlite:///./.atelier/catalog.db"
        )
        engine = make_engine(url)
    return engine


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write UTCDateTime as a plain DateTime, so migrations never import model code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `atelier db upgrade`")
run_migrations()

"""Creating the catalog's database itself (before its schema): what a first set-up needs.

PostgreSQL does not create a database on first connection, so `atelier db create` connects
to the server's maintenance database and issues CREATE DATABASE; SQLite creates its file on
first use, so there only the folder is made.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.errors import InvalidRequest
from db.session import POSTGRES_CONNECT_TIMEOUT_S, translate_unavailable
from redaction import mask_url

# A database name we are willing to put in DDL: identifiers cannot be bound as parameters.
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")
MAINTENANCE_DATABASE = "postgres"


def create_database(url: str) -> bool:
    """Create the database that `url` names unless it exists; True when created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            return False
        path = Path(database)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return True
    if parsed.get_backend_name() != "postgresql":
        raise InvalidRequest(f"cannot create a {parsed.get_backend_name()} database: use SQLite or PostgreSQL")
    name = parsed.database or ""
    if not _SAFE_NAME.match(name):
        raise InvalidRequest(f"database name {name!r} in {mask_url(url)}: use letters, digits, _ and - only")
    admin = create_engine(parsed.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})
    try:
        with translate_unavailable(url), admin.connect() as connection:
            if connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}):
                return False
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    finally:
        admin.dispose()

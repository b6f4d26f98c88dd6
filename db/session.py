"""Engines, sessions and the `Catalog` handle.

SQLite is tuned for a catalog that several worker processes write at once: WAL (readers
never block the writer), foreign keys on (SQLite leaves them off by default), a busy timeout
(writers queue instead of failing), and `BEGIN IMMEDIATE` for write transactions, so a
transaction that reads and then writes never fails to upgrade its lock halfway through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import CatalogUnavailable
from redaction import mask_url, redact

SQLITE_BUSY_TIMEOUT_S = 30
POSTGRES_CONNECT_TIMEOUT_S = 5
# A unit of catalog work whose connection dropped is retried this often, after these
# delays (about 7 s in all: a server restart or a failover, not an outage).
UNAVAILABLE_RETRY_DELAYS_S = (0.5, 2.0, 4.5)
T = TypeVar("T")
_log = logging.getLogger(__name__)
_BEGIN_OPTION = "sqlite_begin"


def make_engine(url: str) -> Engine:
    """An engine for a catalog URL (`sqlite:///path` or `postgresql+psycopg://...`).

    Every engine hides statement parameters from its errors and logs (`hide_parameters`): they
    hold what users typed and what runs recorded, and a failing statement's error text reaches
    logs, tracebacks and the catalog's own error columns.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args.update(connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
    # pool_pre_ping: a pooled connection that the server dropped while it sat idle (a
    # restart, pg_terminate_backend, an idle timeout; a run waits long for its GPU slot) is
    # replaced on checkout instead of failing the next statement. It costs one round trip
    # per checkout; a drop in the middle of a transaction is left to `retry_unavailable`.
    return create_engine(parsed, connect_args=connect_args, pool_pre_ping=True, hide_parameters=True)


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below instead of the
        # sqlite3 module's implicit BEGIN, which cannot do BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


@dataclass
class Catalog:
    """An open catalog: its engine and session factories.

    `session()` is a write transaction (committed on success, rolled back on error);
    `reader()` is a read-only one that, on SQLite, takes no write lock.
    """

    url: str
    engine: Engine
    _writer: sessionmaker[Session]
    _reader: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM write transaction (committed on success, rolled back on error)."""
        with translate_unavailable(self.url), self._writer.begin() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, for the hot paths (claims, run records).

        Commits stay durable (PostgreSQL's default `synchronous_commit`): the catalog is the
        system's memory, and bench/catalog.py shows the hot paths meet their throughput
        target without trading that away.
        """
        with translate_unavailable(self.url), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reader(self) -> Iterator[Session]:
        with translate_unavailable(self.url), self._reader() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def make_catalog(url: str) -> Catalog:
    """A Catalog without any schema check (for migrations and tests)."""
    engine = make_engine(url)
    reader_bind = engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
    return Catalog(
        url=url,
        engine=engine,
        _writer=sessionmaker(engine, expire_on_commit=False),
        _reader=sessionmaker(reader_bind, expire_on_commit=False),
    )


def open_catalog(url: str, *, check_schema: bool = True, create_if_empty: bool = False) -> Catalog:
    """Open the catalog at `url`, making sure the database answers and its schema is current.

    `create_if_empty` migrates a database that has no tables at all to the newest schema,
    so a first `atelier catalog add` works without a separate set-up step; a database that
    already holds data is never migrated implicitly (see `atelier db upgrade`).
    """
    from db import migrate

    catalog = make_catalog(url)
    try:
        with translate_unavailable(url), catalog.engine.connect() as connection:
            empty = not inspect(connection).get_table_names()
        if empty and create_if_empty:
            migrate.upgrade_catalog(catalog)
        elif check_schema:
            migrate.ensure_current(catalog)
    except BaseException:
        catalog.dispose()
        raise
    return catalog


def database_now(connection: Connection) -> datetime:
    """The current time by the database's clock (aware UTC), for lease times.

    Workers on several hosts share one PostgreSQL catalog, and their clocks drift apart: a
    lease written and compared by each worker's own clock would let a worker whose clock
    runs fast steal a live lease, and one whose clock runs slow keep a dead one. The
    server's clock is the one clock they all share. PostgreSQL's `now()` is the start of
    the transaction, so one transaction sees one instant. A SQLite catalog lives in this
    process, on this machine, so its clock is the machine's.
    """
    if connection.dialect.name != "postgresql":
        return datetime.now(UTC)
    return connection.scalar(select(func.now())).astimezone(UTC)


def retry_unavailable(action: Callable[[], T], what: str, delays: tuple[float, ...] = UNAVAILABLE_RETRY_DELAYS_S) -> T:
    """`action()`, run again after each delay while it fails with CatalogUnavailable.

    Only for units of work that are one transaction each, or safe to repeat (a claim, a
    read, closing a run): a dropped connection rolls the transaction back, so the retry
    starts from scratch. The last failure is raised.
    """
    for delay in delays:
        try:
            return action()
        except CatalogUnavailable as exc:
            _log.warning("%s: %s; retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
    return action()


@contextmanager
def translate_unavailable(url: str) -> Iterator[None]:
    """Turn "cannot connect" into CatalogUnavailable with one line and no password."""
    try:
        yield
    except OperationalError as exc:
        if not _is_connection_failure(exc):
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise CatalogUnavailable(f"cannot reach the catalog database {mask_url(url)}: {redact(reason, [url])}") from exc


def _is_connection_failure(exc: OperationalError) -> bool:
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    module = type(orig).__module__ if orig is not None else ""
    if module.startswith("psycopg"):
        import psycopg

        return isinstance(orig, psycopg.OperationalError) and getattr(orig, "sqlstate", None) in (
            None,
            "08000",
            "08001",
            "08003",
            "08004",
            "08006",
            "57P01",
            "57P03",
            "3D000",
        )
    return "unable to open database file" in str(orig)

"""Plumbing shared by the catalog commands (catalog, jobs, runs, artworks, db).

Opening the catalog from settings, the common filter options, and printing rows either as
a table for people or as JSON for scripts. Heavy modules (SQLAlchemy, db) are imported
inside the functions, so that registering these commands costs nothing at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from atelier.console import console, fail
from atelier.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from db.queries import Filters
    from db.session import Catalog

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Only with this tag (repeat: all must match).")]
ArtistOpt = Annotated[str | None, typer.Option(help="Artist contains this text (any input image).")]
TitleOpt = Annotated[str | None, typer.Option("--title", help="Title contains this text.")]
StyleOpt = Annotated[str | None, typer.Option(help="Uses this style image (id, sha256 prefix, title or file name).")]
ContentOpt = Annotated[str | None, typer.Option(help="Uses this content image.")]
MethodOpt = Annotated[str | None, typer.Option(help="Only this method.")]
SinceOpt = Annotated[str | None, typer.Option(help="From this date or time on (ISO 8601, UTC unless given).")]
UntilOpt = Annotated[str | None, typer.Option(help="Before this date or time (ISO 8601).")]
SortOpt = Annotated[str | None, typer.Option(help="Sort key; prefix '-' for descending.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many rows.")]


def open_catalog_from_settings(*, create: bool = False) -> Catalog:
    """The catalog the settings point at, with its schema checked.

    Only commands that mean to create a catalog pass `create` (`catalog add`, `demo`; `db
    upgrade` migrates on its own): then an absent or empty SQLite database is created at the
    newest schema. Any other command run where there is no catalog (another folder, a typo in
    the URL) says so, instead of leaving an empty catalog behind that answers "no jobs match".
    """
    from db.session import open_catalog

    url = get_settings().database_url
    if not create:
        require_catalog(url)
    return open_catalog(url, create_if_empty=create and url.startswith("sqlite"))


def require_catalog(url: str) -> None:
    """Fail with one line when `url` is a SQLite catalog file that does not exist (or is empty)."""
    from redaction import mask_url

    path = sqlite_file(url)
    if path is None or (path.is_file() and path.stat().st_size > 0):
        return
    raise fail(
        f"no catalog at {mask_url(url)} ({path.resolve()} does not exist). Run atelier from the folder that "
        "holds .atelier/, or set ATELIER_DATABASE_URL to the catalog; `atelier catalog add` or "
        "`atelier db upgrade` creates a new one"
    )


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///path` URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    database = url.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return Path(database)


@contextmanager
def opened_catalog(*, create: bool = False) -> Iterator[Catalog]:
    catalog = open_catalog_from_settings(create=create)
    try:
        yield catalog
    finally:
        catalog.dispose()


@contextmanager
def read_session() -> Iterator[Session]:
    """A read-only session on the settings' catalog, closed (with the catalog) afterwards."""
    with opened_catalog() as catalog, catalog.reader() as session:
        yield session


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO date or date-time; naive values are UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} {value!r}: expected an ISO date such as 2026-11-25 or 2026-11-25T17:00") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def make_filters(
    *,
    since: str | None = None,
    until: str | None = None,
    tags: Sequence[str] | None = None,
    limit: int | None = 50,
    **fields: Any,
) -> Filters:
    from db.queries import Filters

    if limit is not None and limit < 1:
        raise fail(f"--limit {limit}: must be at least 1")
    return Filters(
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        tags=tuple(tags or ()),
        limit=limit,
        **fields,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), so that scripts can parse it."""
    typer.echo(json.dumps(data, default=_json_default, indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, Any], *, as_json: bool, empty: str) -> None:
    """Rows as JSON, or as a table whose columns map a header to a key or a function of the row."""
    if as_json:
        print_json(list(rows))
        return
    if not rows:
        console.print(empty)
        return
    table = Table(*(Column(header, overflow="fold") for header in columns))
    for row in rows:
        table.add_row(*(_cell(get(row) if callable(get) else row.get(get)) for get in columns.values()))
    console.print(table)


def print_record(record: Mapping[str, Any], *, as_json: bool) -> None:
    """One record as JSON, or as a two-column table of its fields."""
    if as_json:
        print_json(record)
        return
    table = Table("field", "value", show_header=False)
    for key, value in record.items():
        table.add_row(key, _cell(value))
    console.print(table)


def styles_cell(row: Mapping[str, Any]) -> str:
    """Style inputs as 'title (weight)' pairs."""
    return ", ".join(f"{s['title'] or s['id']} ({s['weight']:g})" for s in row["styles"])

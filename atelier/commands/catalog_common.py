"""Plumbing shared by the catalog commands (catalog, jobs, runs, artworks, db).

Opening the catalog from settings, the common filter options, and printing rows either as
a table for people or as JSON for scripts. Heavy modules (SQLAlchemy, db) are imported
inside the functions, so that registering these commands costs nothing at start-up.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Column, Table

from atelier.commands.signatures import Command, gather_options, keyword
from atelier.console import console, fail, say
from atelier.timestamps import parse_iso_time
from atelier.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from storage import ArtifactStore

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


def open_store_from_settings() -> ArtifactStore:
    """The artifact store the settings point at (boto3 is imported only for S3)."""
    from storage import open_store

    settings = get_settings()
    return open_store(settings.store_url, endpoint_url=settings.s3_endpoint_url)


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
        return parse_iso_time(value)
    except ValueError as exc:
        raise fail(f"{option} {value!r}: {exc}") from None


def make_filters(
    *,
    since: str | None = None,
    until: str | None = None,
    tags: Sequence[str] | None = None,
    limit: int | None = 50,
    **fields: Any,
) -> Filters:
    from db.queries import Filters

    from db.errors import InvalidRequest

    if limit is not None and limit < 1:
        raise fail(f"--limit {limit}: must be at least 1")
    try:
        return Filters(
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            tags=tuple(tags or ()),
            limit=limit,
            **fields,
        )
    except InvalidRequest as exc:  # a control character in a text filter, too many tags
        raise fail(str(exc)) from None


def _filter_group(*, inputs: bool, status: str | None) -> list[inspect.Parameter]:
    group = [keyword("tags", TagOpt, None), keyword("artist", ArtistOpt, None), keyword("title", TitleOpt, None)]
    if inputs:
        group += [keyword("method", MethodOpt, None), keyword("content", ContentOpt, None),
                  keyword("style", StyleOpt, None)]
    if status:
        group.append(keyword("status", Annotated[str | None, typer.Option(help=status)], None))
    return group + [keyword("since", SinceOpt, None), keyword("until", UntilOpt, None),
                    keyword("sort", SortOpt, None), keyword("limit", LimitOpt, 50)]


def filter_options(*, inputs: bool = True, status: str | None = None) -> Callable[[Command], Command]:
    """The filters every listing (`catalog ls`, `jobs ls`, `runs ls`, `artworks ls | export`)
    takes alike, handed to the command as `filters: Filters`: tags, artist, title, dates,
    sort and limit; with `inputs`, the method and the content and style images of jobs; with
    `status` (its help text), the status."""
    return gather_options(_filter_group(inputs=inputs, status=status), "filters", lambda values: make_filters(**values))


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
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, dict) and all(_flat_value(v) for v in value.values()):
        # key=value words (lists comma-joined), so that a long mapping wraps between entries
        return " ".join(f"{k}={','.join(map(_cell, v)) if isinstance(v, list) else (_cell(v) or '-')}"
                        for k, v in value.items())
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return _flat(str(value), 10_000)


def _flat_value(value: Any) -> bool:
    """A scalar, or a list of scalars."""
    items = value if isinstance(value, list) else [value]
    return all(not isinstance(item, dict | list) for item in items)


def _flat(text: str | None, limit: int) -> str:
    from db.text import display_text  # here, not at import: `atelier --help` must not load SQLAlchemy

    return display_text(text, limit)


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, Any], *, as_json: bool, empty: str) -> None:
    """Rows as JSON, or as a table whose columns map a header to a key or a function of the row.

    The table is laid out for 80 columns (the width when output is not a terminal): cells
    wrap between words, never inside one; columns hold ids and short names, never paths
    (commands print those on lines of their own).
    """
    if as_json:
        print_json(list(rows))
        return
    if not rows:
        console.print(empty)
        return
    table = Table(*(Column(header, overflow="ellipsis") for header in columns), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for row in rows:
        table.add_row(*(escape(_cell(get(row) if callable(get) else row.get(get))) for get in columns.values()))
    console.print(table)


def print_record(record: Mapping[str, Any], *, as_json: bool, sections: Mapping[str, Any] | None = None) -> None:
    """One record as JSON, or for people: one `field: value` line per scalar field, and each
    list of records (runs, artifacts) as its own section, one entry per line.

    `sections` maps a field holding a list of records to a function that renders one entry as
    lines of text (paths and URLs on lines of their own).
    """
    if as_json:
        print_json(record)
        return
    sections = sections or {}
    width = max(len(key) for key in record)
    for key, value in record.items():
        if key in sections or value in (None, [], {}):
            continue
        say(f"{key:<{width}}  {escape(_cell(value))}")
    for key, render in sections.items():
        entries = record.get(key) or []
        say(f"\n[bold]{key}[/] ({len(entries)})")
        for entry in entries:
            for index, line in enumerate(render(entry)):
                say(("  " if index == 0 else "      ") + escape(line))


def styles_cell(row: Mapping[str, Any]) -> str:
    """Style inputs as 'title (weight)' pairs; the weight only for blends."""
    styles = row["styles"]
    if len(styles) == 1:
        return short_title(styles[0])
    return ", ".join(f"{short_title(s)} ({s['weight']:g})" for s in styles)


def artifact_lines(artifact: dict[str, Any]) -> list[str]:
    """An artifact of a run: what it is, then its URI whole on a line of its own."""
    label = "artwork" if artifact["kind"] == "output" else artifact["kind"]
    # a video's WebP preview is stored without its size: no "NonexNone"
    size = f"{artifact['width']}x{artifact['height']}, " if artifact["width"] and artifact["height"] else ""
    return [f"{label} {artifact['id']}, {size}{artifact['bytes']} bytes:", artifact["uri"]]


def seconds_cell(seconds: float | None) -> str:
    """A duration as a table shows it: tenths of a second."""
    return "" if seconds is None else f"{seconds:.1f}"


def short_title(image: Mapping[str, Any], limit: int = 20) -> str:
    """An image as a table shows it: its id and its title on one line, shortened."""
    return f"{image['id']}:{_flat(image.get('title'), limit)}" if image.get("title") else str(image["id"])


def distinguishing_params(rows: Sequence[Mapping[str, Any]], always: tuple[str, ...] = ("size",)) -> list[str]:
    """The parameter keys whose values differ between `rows` (plus `always`): what tells the
    variants of a listing apart (size, color mode, ...), without the engine's defaults."""
    keys: list[str] = [key for key in always if any(key in (row.get("params") or {}) for row in rows)]
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in (row.get("params") or {}).items():
            seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    keys += [key for key, values in seen.items() if len(values) > 1 and key not in keys and key != "seed"]
    return keys


def params_cell(keys: Sequence[str]) -> Any:
    """A column function showing `keys` of a row's parameters in short words (`96px luminance
    its=300`): a table column is narrow, and a long word there would be cut off."""
    def cell(row: Mapping[str, Any]) -> str:
        params = row.get("params") or {}
        return " ".join(word for key in keys if (word := _param_word(key, params.get(key))))

    return cell


def _param_word(key: str, value: Any) -> str:
    if value is None or value is False:
        return ""
    if key == "size":
        return f"{value}px"
    if key == "preserve_color" or value is True:
        return str(value) if value is not True else key
    return f"{PARAM_ABBREVIATIONS.get(key, key)}={_cell(value)}"


PARAM_ABBREVIATIONS = {"iterations": "its", "content_weight": "cw", "style_weight": "sw", "tv_weight": "tv",
                       "learning_rate": "lr", "style_scale": "scale", "histogram_mode": "hist"}

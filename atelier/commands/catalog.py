"""`atelier catalog`: register images (uploading their originals) and browse them."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from atelier.commands.catalog_common import (
    JsonOpt,
    filter_options,
    open_store_from_settings,
    opened_catalog,
    print_json,
    print_record,
    print_rows,
    read_session,
)
from atelier.console import USER_ERROR_EXIT, console, err_console, user_errors
from atelier.services.image_ingest import STATUSES, AddOutcome, ImageRequest
from atelier.settings import get_settings

if TYPE_CHECKING:
    from db.queries import Filters

catalog_app = typer.Typer(help="Images: register, list, show.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Image (or video) files, or folders of them.")],
    role: Annotated[str, typer.Option(help="content, style or video.")],
    title: Annotated[str | None, typer.Option(help="Title (one file only; default: the file name).")] = None,
    artist: Annotated[str | None, typer.Option()] = None,
    year: Annotated[int | None, typer.Option()] = None,
    license: Annotated[str | None, typer.Option("--license")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register images: validate each, upload its original to the store, record it.

    A duplicate (same bytes) is reported and skipped; if its stored original is missing or
    corrupt, it is uploaded again. An invalid image is reported and nothing is written for
    it. Exit code 2 if any input was invalid.
    """
    request = ImageRequest(role=role, title=title, artist=artist, year=year, license=license, tags=tuple(tag or ()))
    with user_errors():
        outcomes = register_images(paths, request)
    report_added(outcomes, as_json)
    if any(o.status == "invalid" for o in outcomes):
        raise typer.Exit(USER_ERROR_EXIT)


def register_images(paths: list[Path], request: ImageRequest) -> list[AddOutcome]:
    """`catalog add` on the settings' catalog and store (created if absent), after checking the request."""
    from atelier.services.image_ingest import add_images, plan_images

    plan = plan_images(paths, request)
    with opened_catalog(create=True) as catalog:
        return add_images(catalog, open_store_from_settings(), plan, max_pixels=get_settings().max_image_pixels)


def report_added(outcomes: list[AddOutcome], as_json: bool) -> None:
    """One line per file (invalid ones on stderr) and the counts, or JSON."""
    if as_json:
        print_json([asdict(o) for o in outcomes])
        return
    for o in outcomes:
        if o.status == "invalid":
            # The engine's message already names the file.
            err_console.print(f"[red]invalid:[/] {o.message}", highlight=False, soft_wrap=True)
        elif o.status == "added":
            console.print(f"added image {o.image_id}: {o.path} ({o.message})", highlight=False, soft_wrap=True)
        else:
            console.print(f"{o.status} {o.path}: {o.message}", highlight=False, soft_wrap=True)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in STATUSES}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do")


IMAGE_COLUMNS = {"id": "id", "role": "role", "title": "title", "artist": "artist", "year": "year",
                 "size": lambda r: f"{r['width']}x{r['height']}", "tags": "tags", "sha256": lambda r: r["sha256"][:8]}


@catalog_app.command("ls")
@filter_options(inputs=False)
def ls(
    role: Annotated[str | None, typer.Option(help="content, style or video.")] = None,
    as_json: JsonOpt = False,
    *,
    filters: Filters,
) -> None:
    """List images (sort keys: id, created, title, artist, year, bytes)."""
    with user_errors():
        from db.queries import list_images

        with read_session() as session:
            rows = list_images(session, replace(filters, role=role))
    print_rows(rows, IMAGE_COLUMNS, as_json=as_json, empty="no images match")


@catalog_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Image id, sha256 (prefix), title or file name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one image with its metadata and how many jobs use it."""
    with user_errors():
        from db.queries import show_image

        with read_session() as session:
            record = show_image(session, ref)
    print_record(record, as_json=as_json)

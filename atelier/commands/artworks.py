"""`atelier artworks`: the produced outputs, each with the job, run and inputs behind it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from atelier.commands.catalog_common import (
    JsonOpt,
    distinguishing_params,
    filter_options,
    open_store_from_settings,
    params_cell,
    print_json,
    print_record,
    print_rows,
    read_session,
    seconds_cell,
    short_title,
    styles_cell,
)
from atelier.console import fail, print_url, say, user_errors

if TYPE_CHECKING:
    from db.queries import Filters

artworks_app = typer.Typer(help="Artworks (produced outputs): list, show, best by a metric, export.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(artworks_app, name="artworks")


def artwork_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns of `artworks ls` for 80 columns: ids, short titles and the parameters that tell
    this listing's variants apart; the file's location is in `artworks show` and `export`."""
    variant = params_cell(distinguishing_params(rows))
    return {
        "id": "id",
        "job": "job_id",
        "content": lambda r: short_title(r["content"]),
        "style": styles_cell,
        "variant": lambda r: f"{r['method']} {variant(r)}".strip(),
        "seconds": lambda r: seconds_cell(r["duration_s"]),
        "created": "created_at",
    }


@artworks_app.command("ls")
@filter_options()
def ls(
    best: Annotated[str | None, typer.Option(help="Rank by this run metric, e.g. ssim_to_content.")] = None,
    lowest: Annotated[bool, typer.Option(help="With --best: lowest first (for losses).")] = False,
    as_json: JsonOpt = False,
    *,
    filters: Filters,
) -> None:
    """List artworks, newest first (sort keys: id, created, duration), or the best by a metric."""
    with user_errors():
        from db.queries import best_artworks, list_artworks

        with read_session() as session:
            rows = (best_artworks(session, best, lowest=lowest, f=filters) if best
                    else list_artworks(session, filters))
    columns = artwork_columns(rows)
    if best:
        columns[best] = lambda r: r["metrics"].get(best)
    print_rows(rows, columns, as_json=as_json, empty="no artworks match")


@artworks_app.command("show")
def show(artwork_id: Annotated[int, typer.Argument(help="Artwork (output artifact) id.")],
         as_json: JsonOpt = False) -> None:
    """Show one artwork: its job, run, inputs, method, parameters, runtime and URIs."""
    with user_errors():
        from db.queries import show_artwork

        with read_session() as session:
            record = show_artwork(session, artwork_id)
    if as_json:
        print_json(record)
        return
    people = {**record, "content": short_title(record["content"], 60), "styles": styles_cell(record)}
    files = [("artwork", people.pop("uri")), *people.pop("related_uris").items()]
    print_record(people, as_json=False)
    for kind, uri in files:
        say(f"{kind}:")
        print_url(uri)


@artworks_app.command("export")
@filter_options()
def export(
    folder: Annotated[Path, typer.Argument(help="Folder to write the files and artworks.json into.")],
    artwork_id: Annotated[list[int] | None, typer.Option("--id", help="This artwork (repeatable).")] = None,
    file_format: Annotated[
        str, typer.Option("--format", help="Pictures as png (the stored master, as is), jpg, webp or tiff; videos are always mp4.")
    ] = "png",
    quality: Annotated[int | None, typer.Option(help="JPEG/WebP quality, 1-100.", min=1, max=100)] = None,
    as_json: JsonOpt = False,
    *,
    filters: Filters,
) -> None:
    """Copy artworks into FOLDER as {id}-{content}-x-{style}.png, with an artworks.json sidecar.

    The sidecar lists each file's parameters, inputs and run; an export into a folder that has
    one adds to it. Videos are copied as .mp4 with a .poster.png. Newest first, like `artworks ls`.
    """
    if file_format not in ("png", "jpg", "webp", "tiff"):
        raise fail(f"--format {file_format!r}: expected png, jpg, webp or tiff")
    with user_errors():
        from atelier.export import export_artworks
        from db.queries import list_artworks, show_artwork

        with read_session() as session:
            rows = [show_artwork(session, i) for i in artwork_id] if artwork_id else list_artworks(session, filters)
        entries = export_artworks(open_store_from_settings(), rows, folder, quality=quality, suffix=f".{file_format}")
    if as_json:
        print_json([asdict(entry) for entry in entries])
        return
    for entry in entries:
        say(f"{'wrote' if entry.written else 'kept '} {escape(entry.file)}"
            + (f" (poster {escape(entry.poster)})" if entry.poster else ""))
    say(f"{len(entries)} artworks in {escape(str(folder))}, described in {escape(str(folder / 'artworks.json'))}"
        if entries else f"no artworks match: nothing written in {escape(str(folder))}")

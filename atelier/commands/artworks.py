"""`atelier artworks`: the produced outputs, each with the job, run and inputs behind it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from atelier.commands.catalog_common import (
    ArtistOpt,
    ContentOpt,
    JsonOpt,
    LimitOpt,
    MethodOpt,
    SinceOpt,
    SortOpt,
    StyleOpt,
    TagOpt,
    TitleOpt,
    UntilOpt,
    make_filters,
    print_json,
    print_record,
    print_rows,
    distinguishing_params,
    params_cell,
    read_session,
    seconds_cell,
    short_title,
    styles_cell,
)
from atelier.console import print_url, say, user_errors

artworks_app = typer.Typer(help="Artworks (produced outputs): list, show, best by a metric.", no_args_is_help=True)


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
def ls(
    method: MethodOpt = None,
    content: ContentOpt = None,
    style: StyleOpt = None,
    artist: ArtistOpt = None,
    tag: TagOpt = None,
    title: TitleOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    best: Annotated[str | None, typer.Option(help="Rank by this run metric, e.g. ssim_to_content.")] = None,
    lowest: Annotated[bool, typer.Option(help="With --best: lowest first (for losses).")] = False,
    sort: SortOpt = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List artworks, newest first (sort keys: id, created, duration), or the best by a metric."""
    with user_errors():
        from db.queries import best_artworks, list_artworks

        filters = make_filters(method=method, content=content, style=style, artist=artist, tags=tag, title=title,
                               since=since, until=until, sort=sort, limit=limit)
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

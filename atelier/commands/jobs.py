"""`atelier jobs`: create jobs (one, or a content x style matrix) and inspect them.

`jobs_app` is importable so that orchestration commands (e.g. `jobs rerun-failed`) can
join the same group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

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
    opened_catalog,
    print_json,
    print_record,
    print_rows,
    read_session,
    styles_cell,
)
from atelier.console import console, fail, user_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from db.models import Image

jobs_app = typer.Typer(help="Jobs: add, matrix, list, show, cancel.", no_args_is_help=True)

ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="key=value (value parsed as JSON when it can be, else a string). Repeatable."),
]
PriorityOpt = Annotated[int, typer.Option(help="Higher runs first.")]
MaxAttemptsOpt = Annotated[int, typer.Option(help="Attempts before the job stays failed.")]


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


def parse_param_options(pairs: list[str] | None) -> dict[str, Any]:
    """`--param size=512 --param init=noise` -> {"size": 512, "init": "noise"}."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise fail(f"--param {pair!r}: expected key=value")
        if key in params:
            raise fail(f"--param {key!r} is given twice")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def canonical_params(method: str, pairs: list[str] | None) -> dict[str, Any]:
    """Validated, complete parameters (defaults filled in), so equal jobs get equal keys."""
    from style_engine.params import parse_params

    return parse_params(method, parse_param_options(pairs)).to_dict()


@jobs_app.command("add")
def add(
    content: Annotated[str, typer.Option(help="Content image: id, sha256 (prefix), title or file name.")],
    style: Annotated[list[str], typer.Option(help="Style image (repeat to blend several).")],
    method: Annotated[str, typer.Option(help="Method, e.g. gatys.")],
    style_weight: Annotated[list[float] | None, typer.Option(help="Blend weight per --style, in order.")] = None,
    param: ParamOpt = None,
    priority: PriorityOpt = 0,
    max_attempts: MaxAttemptsOpt = 3,
    as_json: JsonOpt = False,
) -> None:
    """Create one job; an identical existing job is reported instead of duplicated."""
    with user_errors():
        from db.images import find_image
        from db.jobs import add_job

        params = canonical_params(method, param)
        with opened_catalog() as catalog, catalog.session() as session:
            job, created = add_job(
                session,
                content_id=find_image(session, content).id,
                style_ids=[find_image(session, ref).id for ref in style],
                style_weights=style_weight or None,
                method=method,
                params=params,
                priority=priority,
                max_attempts=max_attempts,
            )
            session.flush()
            job_id = job.id
    if as_json:
        print_json({"id": job_id, "created": created})
    else:
        console.print(f"created job {job_id}" if created else f"job {job_id} already exists (same inputs and parameters)")


def select_images(session: Session, selector: str, role: str) -> list[Image]:
    """`tag:NAME` -> every image of `role` with that tag; anything else -> that one image."""
    from db.images import find_image, images_with_tag

    if selector.startswith("tag:"):
        images = images_with_tag(session, selector[4:], role=role)
        if not images:
            raise fail(f"no {role} images are tagged {selector[4:]!r}")
        return images
    return [find_image(session, selector)]


@jobs_app.command("matrix")
def matrix(
    contents: Annotated[list[str], typer.Option(help="tag:NAME or an image reference (repeatable).")],
    styles: Annotated[list[str], typer.Option(help="tag:NAME or an image reference (repeatable).")],
    method: Annotated[str, typer.Option(help="Method, e.g. gatys.")],
    param: ParamOpt = None,
    priority: PriorityOpt = 0,
    max_attempts: MaxAttemptsOpt = 3,
    as_json: JsonOpt = False,
) -> None:
    """One job per (content, style) pair. Idempotent: rerunning creates only what is missing."""
    with user_errors():
        from db.jobs import add_job

        params = canonical_params(method, param)
        with opened_catalog() as catalog, catalog.session() as session:
            content_images = _unique(img for sel in contents for img in select_images(session, sel, "content"))
            style_images = _unique(img for sel in styles for img in select_images(session, sel, "style"))
            results = [
                add_job(session, content_id=c.id, style_ids=[s.id], method=method, params=params,
                        priority=priority, max_attempts=max_attempts)
                for c in content_images
                for s in style_images
            ]
            session.flush()
            ids = [job.id for job, _ in results]
            new = sum(1 for _, created in results if created)
    if as_json:
        print_json({"job_ids": ids, "new": new, "existing": len(ids) - new})
    else:
        console.print(f"{len(content_images)} contents x {len(style_images)} styles = {len(ids)} jobs: "
                      f"{new} new, {len(ids) - new} already existed")


def _unique(images: Iterable[Image]) -> list[Image]:
    seen: dict[int, Image] = {}
    for image in images:
        seen.setdefault(image.id, image)
    return list(seen.values())


JOB_COLUMNS = {
    "id": "id",
    "status": "status",
    "method": "method",
    "content": lambda r: r["content"]["title"] or r["content"]["id"],
    "styles": styles_cell,
    # attempts made / allowed so far (each rerun allows max_attempts more)
    "tries": lambda r: f"{r['attempts']}/{r['max_attempts'] + r['uncounted_attempts']}",
    "last error": lambda r: r["last_error_type"] and f"{r['last_error_type']}: {r['last_error_message']}"[:80],
}


@jobs_app.command("ls")
def ls(
    status: Annotated[str | None, typer.Option(help="pending, running, succeeded, failed or cancelled.")] = None,
    method: MethodOpt = None,
    content: ContentOpt = None,
    style: StyleOpt = None,
    artist: ArtistOpt = None,
    tag: TagOpt = None,
    title: TitleOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    sort: SortOpt = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs (sort keys: id, created, updated, priority, status, attempts)."""
    with user_errors():
        from db.queries import list_jobs

        filters = make_filters(status=status, method=method, content=content, style=style, artist=artist,
                               tags=tag, title=title, since=since, until=until, sort=sort, limit=limit)
        with read_session() as session:
            rows = list_jobs(session, filters)
    print_rows(rows, JOB_COLUMNS, as_json=as_json, empty="no jobs match")


@jobs_app.command("show")
def show(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonOpt = False) -> None:
    """Show a job with its full history: every run and its artifacts."""
    with user_errors():
        from db.queries import show_job

        with read_session() as session:
            record = show_job(session, job_id)
    print_record(record, as_json=as_json)


@jobs_app.command("cancel")
def cancel(
    job_ids: Annotated[list[int], typer.Argument(help="Job ids.")],
    undo: Annotated[bool, typer.Option("--undo", help="Make cancelled jobs pending again instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel pending or failed jobs so that no batch runs them; a running job is left to finish."""
    with user_errors():
        from db.runs import cancel_jobs

        with opened_catalog() as catalog:
            after = cancel_jobs(catalog, job_ids, undo=undo)
    if as_json:
        print_json(after)
        return
    wanted = "pending" if undo else "cancelled"
    changed = [str(job_id) for job_id, status in after.items() if status == wanted]
    kept = [f"{job_id} ({status})" for job_id, status in after.items() if status != wanted]
    console.print(f"{wanted}: {', '.join(changed) or 'none'}" + (f"; left as they are: {', '.join(kept)}" if kept else ""))

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
    artifact_lines,
    make_filters,
    opened_catalog,
    print_json,
    print_record,
    print_rows,
    distinguishing_params,
    params_cell,
    read_session,
    short_title,
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
            params[key] = json.loads(raw, parse_constant=_no_constant)
        except json.JSONDecodeError:
            params[key] = raw
        except ValueError as exc:
            raise fail(f"--param {pair!r}: {exc}") from None
    return params


def _no_constant(name: str) -> float:
    """JSON's Infinity, -Infinity and NaN are no parameter values (and the catalog's JSON can't hold them)."""
    raise ValueError(f"{name} is not a finite number")


def canonical_params(method: str, pairs: list[str] | None) -> dict[str, Any]:
    """Validated, complete parameters (defaults filled in), so equal jobs get equal keys.

    `init=image` is refused: a job carries no init image, so it could only fail at run time.
    """
    from style_engine.params import parse_params

    params = parse_params(method, parse_param_options(pairs)).to_dict()
    if params.get("init") == "image":
        raise fail("--param init=image: a job has no init image to start from; use init=content, noise or style")
    return params


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
                content_id=find_image(session, content, role="content").id,
                style_ids=[find_image(session, ref, role="style").id for ref in style],
                style_weights=style_weight or None,
                method=method,
                params=params,
                priority=priority,
                max_attempts=max_attempts,
                content_role=content_role(method),
            )
            session.flush()
            job_id = job.id
    if as_json:
        print_json({"id": job_id, "created": created})
    else:
        console.print(f"created job {job_id}" if created else f"job {job_id} already exists (same inputs and parameters)")


def content_role(method: str) -> Any:
    """Video methods (video_*) stylize clips: their content is an image of role video."""
    from db.models import ImageRole

    return ImageRole.VIDEO if method.startswith("video_") else ImageRole.CONTENT


def select_images(session: Session, selector: str, role: str) -> list[Image]:
    """`tag:NAME` -> every image of `role` with that tag; anything else -> that one image."""
    from db.images import find_image, images_with_tag

    if selector.startswith("tag:"):
        images = images_with_tag(session, selector[4:], role=role)
        if not images:
            raise fail(f"no {role} images are tagged {selector[4:]!r}")
        return images
    return [find_image(session, selector, role=role)]


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
            content_images = _unique(img for sel in contents for img in select_images(session, sel, content_role(method)))
            style_images = _unique(img for sel in styles for img in select_images(session, sel, "style"))
            results = [
                add_job(session, content_id=c.id, style_ids=[s.id], method=method, params=params,
                        priority=priority, max_attempts=max_attempts, content_role=content_role(method))
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


def job_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns of `jobs ls` for 80 columns: ids and short titles, the parameters that tell
    this listing's variants apart, and the error's type (`jobs show` has the message)."""
    variant = params_cell(distinguishing_params(rows))
    return {
        "id": "id",
        "status": "status",
        # attempts made / allowed so far (each rerun allows max_attempts more)
        "tries": lambda r: f"{r['attempts']}/{r['max_attempts'] + r['uncounted_attempts']}",
        "content": lambda r: short_title(r["content"]),
        "style": styles_cell,
        "variant": lambda r: f"{r['method']} {variant(r)}".strip(),
        "error": lambda r: (r["last_error_type"] or "").removesuffix("Error"),
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
    print_rows(rows, job_columns(rows), as_json=as_json, empty="no jobs match")


@jobs_app.command("show")
def show(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonOpt = False) -> None:
    """Show a job with its full history: every run and its artifacts."""
    with user_errors():
        from db.queries import show_job

        with read_session() as session:
            record = show_job(session, job_id)
    if as_json:
        print_json(record)
        return
    print_record(job_for_people(record), as_json=False, sections={"runs": run_lines})


def job_for_people(job: dict[str, Any]) -> dict[str, Any]:
    """A job's fields as `jobs show` prints them: inputs by id and title, the error whole."""
    return {
        "job": job["id"],
        "status": job["status"],
        "tries": f"{job['attempts']} of {job['max_attempts']}",
        "method": job["method"],
        "params": job["params"],
        "priority": job["priority"],
        "content": short_title(job["content"], 60),
        "styles": styles_cell(job),
        "claimed by": job["claimed_by"],
        "lease until": job["lease_expires_at"],
        "last error": job["last_error_type"] and f"{job['last_error_type']}: {job['last_error_message']}",
        "created": job["created_at"],
        "updated": job["updated_at"],
        "runs": job.get("runs", []),
    }


def run_lines(run: dict[str, Any]) -> list[str]:
    """One run of a job's history: its outcome, then its error and artifacts on lines of their own."""
    seconds = f", {run['duration_s']:.1f} s" if run.get("duration_s") is not None else ""
    where = f" on {run['device']}" if run.get("device") else ""
    where += f" ({run['host']})" if run.get("host") else ""
    started = run["started_at"].strftime("%Y-%m-%d %H:%M") if run.get("started_at") else "?"
    lines = [f"run {run['id']}, attempt {run['attempt']}: {run['status']}{seconds}{where}, started {started}"]
    if run.get("error_type"):
        lines.append(f"{run['error_type']}: {' '.join(str(run['error_message']).split())}")
    for artifact in run.get("artifacts", []):
        lines += artifact_lines(artifact)
    return lines


@jobs_app.command("cancel")
def cancel(
    job_ids: Annotated[list[int], typer.Argument(help="Job ids.")],
    undo: Annotated[bool, typer.Option("--undo", help="Make cancelled jobs pending again instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel pending or failed jobs so that no batch runs them; a running job is left to finish."""
    with user_errors():
        from db.queries import check_ids
        from db.runs import cancel_jobs

        check_ids(job_ids, "job")
        with opened_catalog() as catalog:
            after = cancel_jobs(catalog, job_ids, undo=undo)
    if as_json:
        print_json(after)
        return
    wanted = "pending" if undo else "cancelled"
    changed = [str(job_id) for job_id, status in after.items() if status == wanted]
    kept = [f"{job_id} ({status})" for job_id, status in after.items() if status != wanted]
    console.print(f"{wanted}: {', '.join(changed) or 'none'}" + (f"; left as they are: {', '.join(kept)}" if kept else ""))

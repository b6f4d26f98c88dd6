"""`atelier jobs`: create jobs (one, or a content x style matrix) and inspect them.

`jobs_app` is importable so that orchestration commands (e.g. `jobs rerun-failed`) can
join the same group.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atelier.commands.catalog_common import (
    JsonOpt,
    artifact_lines,
    distinguishing_params,
    filter_options,
    opened_catalog,
    params_cell,
    print_json,
    print_record,
    print_rows,
    read_session,
    short_title,
    styles_cell,
)
from atelier.commands.method_options import method_parameters
from atelier.commands.param_options import ParamOpt, merged_params
from atelier.commands.signatures import Command, gather_options, given, keyword
from atelier.console import console, user_errors
from atelier.services.job_requests import JobRequest, JobsAdded

if TYPE_CHECKING:
    from db.queries import Filters

jobs_app = typer.Typer(help="Jobs: add, matrix, list, show, cancel.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


def job_request_options(*, besides: tuple[str, ...] = ()) -> Callable[[Command], Command]:
    """The options that say what to run, shared by `jobs add` and `jobs matrix`: the method,
    its parameters (the generated options and --param), the priority and the attempts; the
    command receives them as `request: JobRequest`."""
    engine = method_parameters(besides=besides)
    group = [keyword("method", Annotated[str, typer.Option(help="Method, e.g. gatys.")], inspect.Parameter.empty),
             keyword("param", ParamOpt, None), *engine,
             keyword("priority", Annotated[int, typer.Option(help="Higher runs first.")], 0),
             keyword("max_attempts", Annotated[int, typer.Option(help="Attempts before the job stays failed.")], 3)]

    def build(values: dict[str, Any]) -> JobRequest:
        options = given({p.name: values[p.name] for p in engine})
        return JobRequest(values["method"], merged_params(values["param"], options), values["priority"],
                          values["max_attempts"])

    return gather_options(group, "request", build)


@jobs_app.command("add")
# --style-weight has long been the blend weight here (stylize's --style-weights, also accepted);
# the loss weight is --param style_weight=... in this one command.
@job_request_options(besides=("style_weight",))
def add(
    content: Annotated[str, typer.Option(help="Content image: id, sha256 (prefix), title or file name.")],
    style: Annotated[list[str], typer.Option(help="Style image (repeat to blend several).")],
    style_weight: Annotated[
        list[float] | None, typer.Option("--style-weight", "--style-weights", help="Blend weight per --style, in order.")
    ] = None,
    as_json: JsonOpt = False,
    *,
    request: JobRequest,
) -> None:
    """Create one job; an identical existing job is reported instead of duplicated.

    The method's parameters are options (--size, --iterations, ... as `atelier stylize` takes
    them) or --param key=value, for any parameter; left out, they take the method's defaults.
    """
    with user_errors():
        from atelier.services.job_requests import add_one_job

        with opened_catalog() as catalog, catalog.session() as session:
            added = add_one_job(session, content, style, request, style_weights=style_weight)
    if as_json:
        print_json({"id": added.job_id, "created": added.created})
    else:
        console.print(f"created job {added.job_id}" if added.created
                      else f"job {added.job_id} already exists (same inputs and parameters)")


@jobs_app.command("matrix")
@job_request_options()
def matrix(
    contents: Annotated[list[str], typer.Option(help="tag:NAME or an image reference (repeatable).")],
    styles: Annotated[list[str], typer.Option(help="tag:NAME or an image reference (repeatable).")],
    as_json: JsonOpt = False,
    *,
    request: JobRequest,
) -> None:
    """One job per (content, style) pair. Idempotent: rerunning creates only what is missing."""
    with user_errors():
        added = add_matrix(contents, styles, request)
    print_matrix(added, as_json)


def add_matrix(contents: list[str], styles: list[str], request: JobRequest) -> JobsAdded:
    """`jobs matrix` on the settings' catalog."""
    from atelier.services.job_requests import add_job_matrix

    with opened_catalog() as catalog, catalog.session() as session:
        return add_job_matrix(session, contents, styles, request)


def print_matrix(added: JobsAdded, as_json: bool) -> None:
    if as_json:
        print_json({"job_ids": added.job_ids, "new": added.new, "existing": added.existing})
    else:
        console.print(f"{added.contents} contents x {added.styles} styles = {len(added.job_ids)} jobs: "
                      f"{added.new} new, {added.existing} already existed")


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
@filter_options(status="pending, running, succeeded, failed or cancelled.")
def ls(as_json: JsonOpt = False, *, filters: Filters) -> None:
    """List jobs (sort keys: id, created, updated, priority, status, attempts)."""
    with user_errors():
        from db.queries import list_jobs

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
    print_record(job_for_people(record), as_json=False, sections={"segments": segment_lines, "runs": run_lines}
                 if record.get("segments") else {"runs": run_lines})


def job_for_people(job: dict[str, Any]) -> dict[str, Any]:
    """A job's fields as `jobs show` prints them: inputs by id and title, the error whole."""
    from db.segments import film_params

    return {
        "job": job["id"],
        "status": job["status"],
        "tries": f"{job['attempts']} of {job['max_attempts']}",
        "method": job["method"],
        "params": film_params(job["params"])[0],
        "priority": job["priority"],
        "content": short_title(job["content"], 60),
        "styles": styles_cell(job),
        "film": job.get("parent_job_id") and segment_of(job),
        "frames": job.get("segments") and f"{job['frames_done']} of {job['frames_total']} done",
        "claimed by": job["claimed_by"],
        "lease until": job["lease_expires_at"],
        "last error": job["last_error_type"] and f"{job['last_error_type']}: {job['last_error_message']}",
        "created": job["created_at"],
        "updated": job["updated_at"],
        "segments": job.get("segments", []),
        "runs": job.get("runs", []),
    }


def segment_of(job: dict[str, Any]) -> str:
    """Which part of which film a segment job renders."""
    from db.segments import film_params

    _, segment, cuts = film_params(job["params"])
    where = f", frames {segment['start']}-{segment['end'] - 1}" if segment else ""
    shots = f", shots start at {', '.join(map(str, cuts))}" if cuts else ""
    return f"segment {segment['index'] if segment else '?'} of job {job['parent_job_id']}{where}{shots}"


def segment_lines(segment: dict[str, Any]) -> list[str]:
    """One segment of a film: its frames, state, host and how far it is."""
    last = segment["end"] - 1
    host = f" on {segment['host']}" if segment["host"] else ""
    done = min(segment["frames_done"], segment["frames"])
    return [f"segment {segment['index']} (job {segment['job_id']}): frames {segment['start']}-{last}, "
            f"{segment['status']}{host}, {done} of {segment['frames']} frames done"]


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

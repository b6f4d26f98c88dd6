"""`atelier runs`: attempts of jobs, and the runtime distribution per method, device and cost parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from atelier.commands.catalog_common import (
    JsonOpt,
    MethodOpt,
    PARAM_ABBREVIATIONS,
    SinceOpt,
    StyleOpt,
    UntilOpt,
    artifact_lines,
    filter_options,
    make_filters,
    print_json,
    print_record,
    print_rows,
    read_session,
    seconds_cell,
)
from atelier.console import say, user_errors

if TYPE_CHECKING:
    from db.queries import Filters

runs_app = typer.Typer(help="Runs (attempts of jobs): list, show, runtime statistics.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


RUN_COLUMNS = {
    "id": "id",
    "job": "job_id",
    "try": "attempt",
    "status": "status",
    "method": "method",
    "started": "started_at",
    "seconds": lambda r: seconds_cell(r["duration_s"]),
    "error": lambda r: (r["error_type"] or "").removesuffix("Error"),
}


@runs_app.command("ls")
@filter_options(status="running, succeeded or failed.")
def ls(as_json: JsonOpt = False, *, filters: Filters) -> None:
    """List runs (sort keys: id, started, duration, status)."""
    with user_errors():
        from db.queries import list_runs

        with read_session() as session:
            rows = list_runs(session, filters)
    print_rows(rows, RUN_COLUMNS, as_json=as_json, empty="no runs match")


@runs_app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="Run id.")], as_json: JsonOpt = False) -> None:
    """Show one run: parameters, versions, timings, metrics, error and artifacts."""
    with user_errors():
        from db.queries import show_run

        with read_session() as session:
            record = show_run(session, run_id)
    if as_json:
        print_json(record)
        return
    traceback = record.pop("error_traceback", None)
    print_record(record, as_json=False, sections={"artifacts": artifact_lines})
    if traceback:
        say("\n[bold]traceback[/]")
        for line in traceback.rstrip().splitlines():
            say(escape(line))


def stats_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The groups' method, device and those cost parameters that vary, then the figures."""
    from db.queries import COST_PARAMS

    varying = [name for name in COST_PARAMS if len({str(row.get(name)) for row in rows}) > 1 or name == "size"]
    columns: dict[str, Any] = {"method": "method", "device": "device"}
    columns.update({PARAM_ABBREVIATIONS.get(name, name): name for name in varying})
    columns.update({"runs": "runs", "min s": lambda r: seconds_cell(r["min_s"]),
                    "median s": lambda r: seconds_cell(r["median_s"]), "p90 s": lambda r: seconds_cell(r["p90_s"]),
                    "max s": lambda r: seconds_cell(r["max_s"])})
    return columns


@runs_app.command("stats")
def stats(
    method: MethodOpt = None,
    style: StyleOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Runtime distribution of succeeded runs per method, device and the parameters that change
    the cost (size, iterations, optimizer, multi-scale, precision, style scale)."""
    with user_errors():
        from db.queries import runtime_stats

        filters = make_filters(method=method, style=style, since=since, until=until, limit=None)
        with read_session() as session:
            rows = runtime_stats(session, filters)
    print_rows(rows, stats_columns(rows), as_json=as_json, empty="no succeeded runs match")

"""`atelier gallery run` and `atelier jobs rerun-failed`: run a batch flow now, in this
process, and print its outcome.

Both (and `atelier demo`) share the summary and the exit-code rule: 0 when every job
succeeded, 1 when a job failed (the others still ran), 2 for a usage or service error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from atelier.commands.catalog_common import opened_catalog, parse_time, read_session, require_catalog
from atelier.commands.jobs import jobs_app
from atelier.console import console, err_console, print_url, quiet_tracebacks, say, user_errors
from atelier.settings import get_settings

if TYPE_CHECKING:
    from flows.report import BatchReport

JOB_FAILED_EXIT = 1
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show full log records, tracebacks included, on the console.")
]


def register(app: typer.Typer) -> None:
    gallery_app = typer.Typer(help="The gallery flow: stylize pending catalog jobs.", no_args_is_help=True)
    gallery_app.command("run")(run_gallery)
    app.add_typer(gallery_app, name="gallery")
    jobs_app.command("rerun-failed")(rerun_failed)
    jobs_app.command("release")(release)


def run_gallery(
    limit: Annotated[int, typer.Option(help="Claim at most this many pending jobs.")] = 50,
    method: Annotated[list[str] | None, typer.Option(help="Only jobs of this method (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only jobs with an input image tagged so (repeatable).")] = None,
    min_priority: Annotated[int | None, typer.Option(help="Only jobs of at least this priority.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run the gallery flow now on the pending jobs of the catalog."""
    run_and_report("gallery", verbose, limit=limit, methods=method, tags=tag, min_priority=min_priority)


def rerun_failed(
    job: Annotated[list[int] | None, typer.Option("--job", help="A failed job's id (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Failed at or after this date or time (ISO 8601, UTC).")] = None,
    method: Annotated[str | None, typer.Option(help="Only jobs of this method.")] = None,
    error_contains: Annotated[str | None, typer.Option(help="Only jobs whose error mentions this text.")] = None,
    max_jobs: Annotated[int, typer.Option("--max", help="Rerun at most this many jobs.")] = 100,
    verbose: VerboseOpt = False,
) -> None:
    """Reset failed jobs to pending and run them again (the rerun-failed flow)."""
    run_and_report("rerun_failed", verbose, job_ids=job, since=parse_time(since, "--since"), method=method,
                   error_contains=error_contains, max_jobs=max_jobs)


def run_and_report(flow_name: str, verbose: bool, **parameters: Any) -> None:
    """Run the batch flow `flows.<flow_name>` here on the settings' catalog, print its report
    and exit with its code. Jobs named by id must exist (a typo is an error, not an empty batch)."""
    quiet_embedded_prefect()
    with user_errors():
        from db.text import check_filter_text, check_filter_values

        # Checked before the flow starts, so that a bad filter is one line, not a failed flow.
        check_filter_values("tag", parameters.get("tags") or ())
        check_filter_values("method", parameters.get("methods") or ())
        check_filter_text("method", parameters.get("method"))
        check_filter_text("error-contains", parameters.get("error_contains"))
        require_catalog(get_settings().database_url)
        if parameters.get("job_ids"):
            from db.queries import check_jobs_exist

            with read_session() as session:
                check_jobs_exist(session, parameters["job_ids"])
        from importlib import import_module

        flow = getattr(import_module(f"flows.{flow_name}"), flow_name)
        quiet_tracebacks(verbose)
        report = run_flow_for_report(flow, **parameters)
    print_report(report)
    raise typer.Exit(exit_code(report))


def release(
    job_ids: Annotated[list[int], typer.Argument(help="Ids of running jobs to give back.", metavar="ID")],
    force: Annotated[bool, typer.Option(help="Release even while the lease is live (its worker's result is discarded).")] = False,
) -> None:
    """Put stuck running jobs back to pending (no attempt lost); refused while a lease is live unless --force."""
    with user_errors(), opened_catalog() as catalog:
        from db.runs import release_by_hand

        outcome = release_by_hand(catalog, job_ids, "released by hand (atelier jobs release)", force=force)
    for job_id, what in outcome.items():
        console.print(f"job {job_id}: {what}", highlight=False, soft_wrap=True)
    if any(what.startswith("refused") for what in outcome.values()):
        raise typer.Exit(JOB_FAILED_EXIT)


def run_flow_for_report(flow: Any, **parameters: Any) -> BatchReport:
    """Run a batch flow and return its report, whether the flow run completed or failed.

    A flow run fails with BatchFailed when some jobs failed; any other failure (the catalog
    unreachable, say) is re-raised for `user_errors` to explain. Ctrl-C or SIGTERM stops
    the jobs, releases them, and exits 130 (flows.foreground).
    """
    from flows.embedded_server import start_embedded_server
    from flows.foreground import INTERRUPTED_EXIT, run_stoppable
    from flows.report import BatchFailed

    start_embedded_server()  # before the flow: a killed command must not leave it behind

    def say(message: str) -> None:
        err_console.print(message, highlight=False, soft_wrap=True)

    state, stopped_by = run_stoppable(lambda: flow(**parameters, return_state=True), say)
    if stopped_by:
        say(f"stopped by {stopped_by}: the batch's unfinished jobs are pending again")
        raise typer.Exit(INTERRUPTED_EXIT)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BatchFailed):
        return outcome.report
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def quiet_embedded_prefect() -> None:
    """Without a Prefect server, skip telemetry: offline it fails and locks the ephemeral database.

    Call it before importing Prefect, which reads its settings at import.
    """
    import os

    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def print_report(report: BatchReport) -> None:
    """Succeeded and failed jobs and where the contact sheet is, readable at 80 columns:
    one line per job (ids and short titles), each failure with how to fix it, and paths and
    URLs on lines of their own so that they can be copied whole."""
    from flows.report import explain_failure

    console.print(f"[bold]{escape(report.headline())}[/]", soft_wrap=True)
    for line in report.succeeded:
        seconds = f", {line.seconds:.1f} s" if line.seconds is not None else ""
        artwork = f" -> artwork {line.artwork_id}" if line.artwork_id is not None else ""
        say(f"  [green]ok[/]     job {line.job_id}: {escape(line.content)} x {escape(line.styles)}, "
            f"{line.method} {line.size or '?'} px{seconds}{artwork}")
    for line in report.failed:
        reason, fix = explain_failure(line)
        say(f"  [red]{line.status}[/] job {line.job_id}: {escape(line.content)} x {escape(line.styles)}, "
            f"{line.method} {line.size or '?'} px: {escape(reason)}")
        say(f"         to fix: {escape(fix)}")
    if report.succeeded:
        say("outputs: `atelier artworks show ID`, or copy them out with `atelier artworks export DIR`")
    if report.contact_sheet:
        say("contact sheet:")
        print_url(report.contact_sheet_at or report.contact_sheet)
    for note in report.notes:
        say(f"note: {escape(note)}")


def exit_code(report: BatchReport) -> int:
    return JOB_FAILED_EXIT if report.failed else 0

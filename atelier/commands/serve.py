"""`atelier serve`: the nightly gallery and rerun-failed, served from this one process.

For a single machine without a work pool: Prefect's `serve` polls for scheduled and
requested runs of these deployments and executes them in subprocesses.
"""

from __future__ import annotations

from typing import Annotated

import typer

from atelier.console import console, user_errors
from atelier.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    limit: Annotated[int, typer.Option(help="Flow runs executing at once on this machine.")] = 1,
) -> None:
    """Serve the nightly-gallery (on the configured cron and time zone) and rerun-failed deployments."""
    settings = get_settings()
    with user_errors():
        from prefect import serve as prefect_serve

        from flows.deployments import served_deployments
        from flows.embedded_server import start_embedded_server

        start_embedded_server()  # without a server configured: one that dies with this process

        deployments = served_deployments(settings.nightly_cron, settings.timezone)
        names = " and ".join(f"{d.flow_name}/{d.name}" for d in deployments)
        console.print(f"serving {names} (nightly on {settings.nightly_cron}, {settings.timezone})")
        # Without pause_on_shutdown=False, stopping the server would pause the schedule.
        prefect_serve(*deployments, pause_on_shutdown=False, limit=limit)

"""`atelier web`: serve the gallery (artworks, jobs, content and styles) in a browser."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from atelier.console import err_console, say, user_errors
from atelier.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("web")(web)


def web(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the gallery web app on the settings' catalog and store (http://HOST:PORT/).

    Write actions (rerunning a batch's failed jobs) are on only when ATELIER_WEB_TOKEN is set;
    links to Prefect flow runs need ATELIER_PREFECT_UI_URL.
    """
    from atelier.commands.catalog_common import require_catalog

    settings = get_settings()
    require_catalog(settings.database_url)
    with user_errors():
        import uvicorn

        from atelier.web.app import create_app
        from atelier.web.config import WebConfig

        app = create_app(WebConfig(
            database_url=settings.database_url, store_url=settings.store_url,
            s3_endpoint_url=settings.s3_endpoint_url, prefect_ui_url=settings.prefect_ui_url,
            write_token=settings.web_token, cache_dir=Path(settings.cache_dir),
        ))
        say(f"gallery at http://{host}:{port}/ (write actions {'on' if settings.web_token else 'off'}); Ctrl-C stops it")
        if not is_loopback(host):
            err_console.print(f"[yellow]warning:[/] {escape(host)} is reachable from other machines, and reading the "
                              "gallery needs no login: anyone who reaches it sees every artwork, image and job. Put "
                              "it behind a reverse proxy with authentication (README: The gallery in a browser), or "
                              "serve on 127.0.0.1.", highlight=False, soft_wrap=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def is_loopback(host: str) -> bool:
    """Whether `host` is an address (or the name localhost) that only this machine reaches."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False

"""`atelier store create-bucket` and `atelier setup`: make the services exist before first use.

PostgreSQL databases and S3 buckets are not created on first use, and nothing else should
create them silently; these commands do it on purpose, and are safe to run again.
"""

from __future__ import annotations

import typer

from atelier.console import console, user_errors
from atelier.settings import get_settings
from redaction import mask_url

store_app = typer.Typer(help="Artifact store: create its bucket or folder.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
    app.command("setup")(setup)


@store_app.command("create-bucket")
def create_bucket() -> None:
    """Create the store's S3 bucket (or local folder) unless it exists."""
    with user_errors():
        create_store()


def create_store() -> None:
    from atelier.commands.catalog_common import open_store_from_settings

    settings = get_settings()
    created = open_store_from_settings().create()
    where = f" at {mask_url(settings.s3_endpoint_url)}" if settings.s3_endpoint_url else ""
    console.print(f"store {settings.store_url}{where} {'created' if created else 'already exists'}",
                  highlight=False, soft_wrap=True)


def setup() -> None:
    """Create the catalog database and its tables, and the store's bucket, where missing.

    The steps are `db create`, `db upgrade` and `store create-bucket`; each does nothing
    when already done.
    """
    from atelier.commands.db import create, upgrade

    create()
    upgrade("head")
    with user_errors():
        create_store()

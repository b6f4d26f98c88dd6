"""`atelier db`: migrate the catalog and report its schema state."""

from __future__ import annotations

import typer

from atelier.console import console, user_errors
from atelier.settings import get_settings
from redaction import mask_url

db_app = typer.Typer(help="Catalog database: create it, migrate it.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


@db_app.command("create")
def create() -> None:
    """Create the catalog's database unless it exists (then `db upgrade` makes its tables).

    PostgreSQL: CREATE DATABASE on the server named by the URL; SQLite: its file and folder.
    """
    with user_errors():
        from db.admin import create_database

        url = get_settings().database_url
        created = create_database(url)
    console.print(f"database {mask_url(url)} {'created' if created else 'already exists'}", highlight=False,
                  soft_wrap=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the catalog's migrations (creates the database's tables on first use)."""
    with user_errors():
        from db.migrate import upgrade as run_upgrade

        url = get_settings().database_url
        before, after = run_upgrade(url, revision)
        if before == after:
            console.print(f"catalog {mask_url(url)} is already at {_names(after)}")
        else:
            console.print(f"catalog {mask_url(url)} upgraded from {_names(before)} to {_names(after)}")


@db_app.command("status")
def status() -> None:
    """Show the catalog's schema revision and whether it is current (exit 2 if not)."""
    with user_errors():
        from db.migrate import current_revisions, ensure_current, head_revisions
        from db.session import make_catalog

        url = get_settings().database_url
        catalog = make_catalog(url)
        try:
            console.print(f"catalog {mask_url(url)}: at {_names(current_revisions(catalog))}, "
                          f"newest {_names(head_revisions())}")
            ensure_current(catalog)
        finally:
            catalog.dispose()


def _names(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions)) or "(empty)"

"""`atelier config`: the effective settings, secrets masked."""

from __future__ import annotations

import typer
from rich.table import Table

from atelier.console import console
from atelier.settings import get_settings, mask_url


def register(app: typer.Typer) -> None:
    app.command("config")(show_config)


def show_config() -> None:
    """Print the effective settings (environment, .env, defaults), with secrets masked."""
    settings = get_settings()
    table = Table("setting", "value", "environment variable")
    for column in table.columns:
        column.overflow = "fold"  # a truncated URL is useless; wrap it instead
    for name, value in settings.model_dump().items():
        if name.endswith("_url"):
            value = mask_url(value)
        table.add_row(name, str(value), f"ATELIER_{name.upper()}")
    console.print(table)

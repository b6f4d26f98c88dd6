"""`atelier config`: the effective settings, secrets masked."""

from __future__ import annotations

import typer
from rich.markup import escape

from atelier.console import say
from atelier.settings import get_settings
from redaction import mask_setting


def register(app: typer.Typer) -> None:
    app.command("config")(show_config)


def show_config() -> None:
    """Print the effective settings (environment, .env, defaults), with secrets masked.

    One `NAME value` line each, never wrapped, so that a URL can be copied whole.
    """
    settings = get_settings()
    values = settings.model_dump()
    width = max(len(name) for name in values)
    for name, value in values.items():
        say(f"{name:<{width}}  {escape(str(mask_setting(name, value)))}")
    say("Each comes from the environment variable ATELIER_<NAME> (or a .env file), else its default.")

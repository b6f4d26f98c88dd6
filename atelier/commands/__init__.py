"""Sub-commands of `atelier`. Each module exposes `register(app)`."""

from __future__ import annotations

from importlib import import_module

import typer

# Add a module name here when it gains a `register(app)` function.
COMMAND_MODULES: tuple[str, ...] = ("config", "stylize", "video", "db", "catalog", "jobs", "runs", "artworks", "gallery", "serve",
                                   "demo", "setup", "models", "web")


def register_commands(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        import_module(f"atelier.commands.{name}").register(app)

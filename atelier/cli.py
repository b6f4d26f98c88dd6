"""The `atelier` command. Each sub-command lives in `atelier/commands/`.

Command modules import only Typer and rich at module level; the engine, SQLAlchemy,
boto3 and Prefect are imported inside the commands that need them, so that
`atelier stylize` starts without paying for the catalog or the orchestrator.
"""

from __future__ import annotations

import typer

from atelier import __version__
from atelier.commands import register_commands, reproduce

app = typer.Typer(
    name="atelier",
    help="Batch neural style transfer: catalog, engine, flows and storage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"atelier {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Atelier command line."""


register_commands(app)
reproduce.register(app)

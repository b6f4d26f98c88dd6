"""Shared CLI plumbing: one-line errors with exit code 2 instead of tracebacks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from redaction import redact_settings

console = Console()
err_console = Console(stderr=True)

USER_ERROR_EXIT = 2


def fail(message: str) -> typer.Exit:
    """Print one error line and return the exit to raise (`raise fail(...)`).

    Any credential of the configured URLs is masked: driver messages quote URLs and their
    parts in shapes no caller can anticipate.
    """
    err_console.print(f"[bold red]error:[/] {escape(hide_secrets(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(USER_ERROR_EXIT)


def say(markup: str) -> None:
    """One line of output that wraps at spaces only, never inside a word."""
    console.print(markup, highlight=False, soft_wrap=True)


def print_url(url: str) -> None:
    """A URL or path on a line of its own, never wrapped, so that it can be copied whole."""
    typer.echo(url)


class _OneLineFormatter(logging.Formatter):
    """Wraps a console handler's formatter: the first line of each record, without traceback.

    Works on a copy of the record, so that the handlers that keep the whole record (the
    Prefect API's, for the run log) see it unchanged.
    """

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        copy = logging.makeLogRecord(record.__dict__)
        copy.exc_info, copy.exc_text, copy.stack_info = None, None, None
        lines = self.inner.format(copy).splitlines()
        return lines[0] if lines else ""


def quiet_tracebacks(verbose: bool) -> None:
    """Unless `verbose`, console log lines stay one line each: expected failures (a job's bad
    input, a store outage) are reported once in the summary, and their tracebacks stay in the
    catalog (`atelier jobs show`, `atelier runs show`) and the Prefect run log.

    Call it after importing Prefect, which installs its console handler on the root logger.
    """
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            inner = handler.formatter.inner if isinstance(handler.formatter, _OneLineFormatter) else handler.formatter
            handler.setFormatter(inner if verbose else _OneLineFormatter(inner))
            # Prefect bound the handler to the stderr of the moment it set logging up; a caller
            # that runs commands in-process (tests, a web app) may have replaced it since.
            handler.stream = sys.stderr  # not setStream(): it flushes the old stream, which may be closed
            handler.console.file = sys.stderr


def hide_secrets(text: str) -> str:
    """`text` with the secrets of the settings masked (URL credentials, the web token)."""
    from atelier.settings import get_settings

    try:
        settings = get_settings().model_dump()
    except Exception:  # invalid settings are reported elsewhere; mask what the environment holds
        import os

        settings = {name.removeprefix("ATELIER_").lower(): value for name, value in os.environ.items()
                    if name.startswith("ATELIER_")}
    return redact_settings(text, settings)


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes that mean bad input or an unreachable service, not a bug.

    Looked up from modules already imported, so that a light command such as
    `atelier stylize` never pays for importing SQLAlchemy, boto3 or Prefect.
    """
    names = {
        "atelier.services.errors": ("BadInput",),
        "style_engine.errors": ("InvalidInputError", "OptimizationError", "TransientError"),
        "db.errors": ("CatalogError",),
        "storage.errors": ("StorageError",),
        "sqlalchemy.exc": ("OperationalError",),
    }
    found: list[type[BaseException]] = []
    for module_name, class_names in names.items():
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(getattr(module, name) for name in class_names if hasattr(module, name))
    return tuple(found)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn known error types into one clear line and exit code 2."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        if isinstance(exc, _user_error_types()):
            raise fail(_one_line(exc)) from None
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if exc.__class__.__module__.startswith("sqlalchemy"):
        text = text.split("(Background on this error")[0].strip()
    return text or exc.__class__.__name__

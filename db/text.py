"""User-supplied text in and out of the catalog: filters that match it literally, and a
one-line form of it for display.

Users type titles, artists and error texts, not SQL patterns: `%`, `_` and the escape
character itself must match only themselves, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func


def contains_text(expression: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive "contains `text`" on a string column or expression, wildcards escaped."""
    return func.lower(expression).contains(text.lower(), autoescape=True)


def display_text(text: str | None, limit: int = 80) -> str:
    """`text` on one line for tables, captions and artifacts: control characters and runs of
    whitespace become one space, and anything longer than `limit` ends with an ellipsis.

    Titles come from users and file names, and may hold newlines or tabs that break tables
    and the contact sheet's text layout.
    """
    if not text:
        return ""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"

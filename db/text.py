"""Text filters that match what the user typed, literally.

Users type titles, artists and error texts, not SQL patterns: `%`, `_` and the escape
character itself must match only themselves, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func


def contains_text(expression: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive "contains `text`" on a string column or expression, wildcards escaped."""
    return func.lower(expression).contains(text.lower(), autoescape=True)

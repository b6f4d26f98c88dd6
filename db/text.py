"""User-supplied text in and out of the catalog: filters that match it literally, and a
one-line form of it for display.

Users type titles, artists and error texts, not SQL patterns: `%`, `_` and the escape
character itself must match only themselves, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func

from db.errors import InvalidRequest

# Values one repeatable filter (`--tag`, `tag=`) may have. Each adds a subquery to the
# statement: 900 cost seconds of CPU, and from 1,000 on SQLite refuses the statement.
MAX_FILTER_VALUES = 20
# Categories no one types into a filter: control characters (Cc: NUL, ESC, DEL...) and lone
# surrogates (Cs, bytes of a command line that are not UTF-8). SQLite ends a pattern at NUL,
# so a NUL-led filter matched every row; PostgreSQL refuses NUL with a driver error.
_NOT_TEXT = ("Cc", "Cs")


def check_filter_text(name: str, text: str | None) -> None:
    """Refuse a text filter value with a control character, naming the filter and the character."""
    if not text:
        return
    bad = next((c for c in text if unicodedata.category(c) in _NOT_TEXT), None)
    if bad is not None:
        raise InvalidRequest(f"{name} filter {display_text(text, 40)!r}: contains the control character "
                             f"U+{ord(bad):04X}; type the text without it")


def check_filter_values(name: str, values: Sequence[str]) -> None:
    """Refuse more than MAX_FILTER_VALUES values of a repeatable filter, or a bad one among them."""
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidRequest(f"{name} filter: {len(values)} values, at most {MAX_FILTER_VALUES} are allowed")
    for value in values:
        check_filter_text(name, value)


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

"""Reading the dates and times users type (CLI options, the gallery's filters): one rule for both."""

from __future__ import annotations

from datetime import UTC, datetime

EXPECTED = "expected an ISO date such as 2026-11-25 or 2026-11-25T17:00"


def parse_iso_time(value: str) -> datetime:
    """ISO 8601 date or date-time, aware; naive values are UTC. ValueError saying what is expected otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(EXPECTED) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed

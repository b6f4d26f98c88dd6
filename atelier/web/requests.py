"""Query strings to catalog filters: every bad value is refused with a reason (HTTP 400).

The filters live in the URL so that a filtered view can be shared; `query_for` writes them
back (for the pager and the sort links) with the same names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from atelier.timestamps import parse_iso_time
from db.queries import Filters

# Sorts a visitor can pick on the grid: label -> Filters.sort key.
GRID_SORTS = {"newest": "-id", "oldest": "id", "slowest": "-duration", "fastest": "duration"}
METRIC_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_PAGE = 100_000
PAGE_DIGITS = re.compile(r"[0-9]{1,6}")
TEXT_LIMIT = 300
FILTER_FIELDS = ("content", "style", "artist", "method", "status", "since", "until")


class BadRequest(ValueError):
    """A query parameter the app refuses; the message names it and says what is expected."""


@dataclass(frozen=True)
class GridQuery:
    """A grid request: the filters, the sort (or metric ranking) and the page."""

    filters: Filters
    sort: str
    metric: str | None
    lowest: bool
    page: int
    raw: dict[str, Any]


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = (params.get(name) or "").strip()
    if len(value) > TEXT_LIMIT:
        raise BadRequest(f"{name}: longer than {TEXT_LIMIT} characters")
    return value or None


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        return parse_iso_time(value)
    except ValueError as exc:
        raise BadRequest(f"{name} {value!r}: {exc}") from None


def page_number(params: Mapping[str, str]) -> int:
    value = params.get("page") or "1"
    # ASCII digits only: str.isdigit() is true for '²' and '①', which int() refuses.
    if not PAGE_DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"page {value!r}: expected a whole number from 1 to {MAX_PAGE}")
    return int(value)


def grid_query(params: Mapping[str, str], tags: Sequence[str], page_size: int) -> GridQuery:
    """The grid's filters from a query string (`tag` may repeat)."""
    sort = params.get("sort") or "newest"
    if sort not in GRID_SORTS:
        raise BadRequest(f"sort {sort!r}: expected one of {', '.join(GRID_SORTS)}")
    metric = _text(params, "metric")
    if metric is not None and not METRIC_NAME.match(metric):
        raise BadRequest(f"metric {metric!r}: expected a metric name such as ssim_to_content")
    lowest = params.get("order", "high") == "low"
    if params.get("order", "high") not in ("high", "low"):
        raise BadRequest(f"order {params.get('order')!r}: expected high or low")
    page = page_number(params)
    tags = [t.strip() for t in tags if t.strip()]
    if any(len(t) > TEXT_LIMIT for t in tags):
        raise BadRequest(f"tag: longer than {TEXT_LIMIT} characters")
    filters = Filters(
        content=_text(params, "content"), style=_text(params, "style"), artist=_text(params, "artist"),
        method=_text(params, "method"), status=_text(params, "status"), tags=tuple(tags),
        since=_time(params, "since"), until=_time(params, "until"), sort=GRID_SORTS[sort],
        limit=page_size + 1, offset=(page - 1) * page_size,  # one more row says whether a next page exists
    )
    raw = {name: params[name] for name in FILTER_FIELDS if params.get(name)}
    raw.update({"tag": tags} if tags else {})
    raw.update({"sort": sort} if sort != "newest" else {})
    raw.update({"metric": metric, "order": "low" if lowest else "high"} if metric else {})
    return GridQuery(filters, sort, metric, lowest, page, raw)


def query_for(raw: Mapping[str, Any], **changes: Any) -> str:
    """`?a=1&tag=x&tag=y` for the filters in `raw` with `changes` applied (None removes one)."""
    merged = {**raw, **changes}
    pairs = [(k, v) for k, v in merged.items() if v not in (None, "", [])]
    return "?" + urlencode(pairs, doseq=True) if pairs else "?"


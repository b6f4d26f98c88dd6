"""Issue 21: text filters refuse control characters and too many values, in the catalog (so
the CLI and the web app alike), and a failing statement never shows its parameters."""

from __future__ import annotations

import pytest

from db.errors import InvalidRequest
from db.queries import Filters, list_images
from db.text import MAX_FILTER_VALUES
from tests.fixtures.databases import add_image, add_jobs
from tests.test_cli_catalog import _error_line, cli, gallery, pictures  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("field", ["artist", "title"])
@pytest.mark.parametrize("typed", ["\x00", "\x00Hokusai", "Hoku\x1bsai", "\x7f"])
def test_a_control_character_in_a_text_filter_is_refused_not_a_match_for_everything(catalog, field, typed):
    add_image(catalog, "plain", artist="Plain Painter")
    with pytest.raises(InvalidRequest, match=f"{field} filter .*control character U\\+00"):
        with catalog.reader() as session:
            list_images(session, Filters(**{field: typed}))


def test_too_many_tags_are_refused_naming_the_filter_and_the_cap():
    Filters(tags=tuple(f"t{i}" for i in range(MAX_FILTER_VALUES)))
    with pytest.raises(InvalidRequest, match=f"tag filter: 900 values, at most {MAX_FILTER_VALUES}"):
        Filters(tags=tuple(f"t{i}" for i in range(900)))


def test_rerun_error_contains_refuses_a_nul(catalog):
    from db.runs import reset_failed

    add_jobs(catalog, 1)
    with pytest.raises(InvalidRequest, match="error-contains filter"):
        reset_failed(catalog, error_contains="\x00")


@pytest.mark.e2e
@pytest.mark.parametrize("args", [
    ("artworks", "ls", "--artist", "\x00"),
    ("catalog", "ls", "--title", "\x00x"),
    ("jobs", "ls", "--tag", "paint", "--tag", "a\x07b"),
    ("jobs", "rerun-failed", "--error-contains", "\x00"),
    ("gallery", "run", "--tag", "\x00"),
])
def test_cli_text_filters_with_a_control_character_are_one_line_exit_2(gallery, args):
    result = gallery(*args, code=2)
    line = _error_line(result)
    assert "filter" in line and "control character U+00" in line, line


@pytest.mark.e2e
def test_cli_too_many_tags_is_one_line_exit_2(gallery):
    tags = [a for i in range(MAX_FILTER_VALUES + 1) for a in ("--tag", f"t{i}")]
    assert f"at most {MAX_FILTER_VALUES}" in _error_line(gallery("artworks", "ls", *tags, code=2))


def test_a_failing_statement_shows_no_parameter_values(catalog, caplog):
    """Statement parameters hold what users typed: they never reach an error or a log line."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    secret = "parameter-value-7f3a"
    with pytest.raises(DBAPIError) as failure:
        with catalog.reader() as session:
            session.execute(text("SELECT * FROM no_such_table WHERE x = :p"), {"p": secret})
    shown = str(failure.value) + repr(failure.value) + caplog.text
    assert "no_such_table" in shown and secret not in shown

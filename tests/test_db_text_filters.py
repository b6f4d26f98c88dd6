"""Text filters match literally: `%`, `_` and the escape character match only themselves
(issue 13 item 6), on SQLite and PostgreSQL."""

import pytest

from db.claims import claim_jobs
from db.queries import Filters, list_images, list_jobs
from db.runs import fail_run, reset_failed, start_run
from tests.fixtures.databases import add_image, add_jobs

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("typed", ["%", "_", "/", "\\", "50%", "a_b"])
def test_title_and_artist_filters_treat_wildcards_literally(catalog, typed):
    plain = add_image(catalog, "plain", artist="Plain Painter")
    literal = add_image(catalog, "odd", artist=f"X {typed} Y")
    with catalog.session() as session:
        from db.models import Image

        session.get(Image, literal).title = f"odd {typed} title"
    with catalog.reader() as session:
        assert [i["id"] for i in list_images(session, Filters(artist=typed))] == [literal]
        assert [i["id"] for i in list_images(session, Filters(title=typed))] == [literal]
        assert plain not in [i["id"] for i in list_images(session, Filters(artist=typed))]


def test_job_artist_filter_treats_percent_literally(catalog):
    add_jobs(catalog, 1)
    with catalog.reader() as session:
        assert list_jobs(session, Filters(artist="%")) == []
        assert list_jobs(session, Filters(title="_")) == []


@pytest.mark.parametrize("typed", ["%", "_", "%%"])
def test_rerun_error_contains_a_wildcard_selects_no_other_job(catalog, typed):
    job_a, job_b = add_jobs(catalog, 2)
    claim_jobs(catalog, 2, "w", 60)
    fail_run(catalog, start_run(catalog, job_a, "w"), "w", error_type="InvalidInputError", message="corrupt image")
    fail_run(catalog, start_run(catalog, job_b, "w"), "w", error_type="InvalidInputError",
             message=f"disk 100{typed} full")
    assert reset_failed(catalog, error_contains=typed) == [job_b]
    assert reset_failed(catalog, error_contains=typed) == []

"""Images, jobs and the query functions, on both databases."""

from datetime import UTC, datetime, timedelta

import pytest

from db.errors import InvalidRequest, NotFound
from db.images import find_image, images_with_tag
from db.jobs import add_job, job_spec
from db.models import Image
from db.queries import Filters, list_images, list_jobs, show_image
from tests.fixtures.databases import add_image

pytestmark = pytest.mark.integration


def test_images_are_deduplicated_by_sha256(catalog):
    first = add_image(catalog, "tubingen", tags=["City", "germany"])
    again = add_image(catalog, "tubingen", role="style")  # same bytes, other role: still one row
    assert first == again
    with catalog.reader() as session:
        assert [i["id"] for i in list_images(session)] == [first]
        assert list_images(session)[0]["tags"] == ["city", "germany"]


def test_find_image_by_id_sha_prefix_title_and_file_name(catalog):
    image_id = add_image(catalog, "starry")
    with catalog.reader() as session:
        sha = session.get(Image, image_id).sha256
        for ref in (str(image_id), sha, sha[:8], "Starry", "starry.png"):
            assert find_image(session, ref).id == image_id
        with pytest.raises(NotFound, match="'nope'"):
            find_image(session, "nope")


def test_image_filters_on_both_databases(catalog):
    a = add_image(catalog, "a", "content", tags=["city"], artist="Ann")
    b = add_image(catalog, "b", "style", tags=["city", "night"], artist="Bob")
    add_image(catalog, "c", "style", tags=["night"])
    with catalog.reader() as session:
        ids = lambda **kw: [i["id"] for i in list_images(session, Filters(**kw))]  # noqa: E731
        assert ids(tags=["city"]) == [b, a]  # newest first
        assert ids(tags=["city", "NIGHT"]) == [b]
        assert ids(role="style", artist="bo") == [b]
        assert ids(title="A") == [a]
        assert ids(sort="-id", limit=2) == [b + 1, b]
        assert ids(since=datetime.now(UTC) + timedelta(hours=1)) == []
        assert [i.id for i in images_with_tag(session, "night", role="style")] == [b, b + 1]
        with pytest.raises(InvalidRequest, match="cannot sort by 'colour'"):
            ids(sort="colour")
        assert show_image(session, str(a))["jobs_as_content"] == 0


def test_adding_the_same_job_twice_is_a_no_op(catalog):
    content = add_image(catalog, "content")
    s1, s2 = add_image(catalog, "s1", "style"), add_image(catalog, "s2", "style")
    with catalog.session() as session:
        job, created = add_job(session, content_id=content, style_ids=[s1, s2], style_weights=[0.7, 0.3],
                               method="gatys", params={"size": 64})
        assert created
        same, created_again = add_job(session, content_id=content, style_ids=[s1, s2], style_weights=[0.7, 0.3],
                                      method="gatys", params={"size": 64})
        assert same.id == job.id and not created_again
        swapped, created_swapped = add_job(session, content_id=content, style_ids=[s2, s1],
                                           style_weights=[0.7, 0.3], method="gatys", params={"size": 64})
        assert created_swapped and swapped.id != job.id  # order and weights are part of the key
        job_id = job.id
    with catalog.reader() as session:
        spec = job_spec(session, job_id)
    assert [s.id for s in spec.styles] == [s1, s2] and spec.style_weights == (0.7, 0.3)
    assert spec.content.id == content and spec.status == "pending"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"style_ids": []}, "at least one style"),
        ({"style_weights": [1.0, 2.0]}, "2 style weights given for 1 styles"),
        ({"style_weights": [-1.0]}, "positive"),
        ({"style_ids": [999]}, "no image with id 999"),
        ({"content_id": "style"}, "role 'style'"),
    ],
)
def test_bad_jobs_are_refused(catalog, kwargs, message):
    ids = {"content": add_image(catalog, "content"), "style": add_image(catalog, "style", "style")}
    args = {"content_id": ids["content"], "style_ids": [ids["style"]], "method": "gatys", "params": {}}
    args.update({k: ids.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()})
    with pytest.raises((InvalidRequest, NotFound), match=message), catalog.session() as session:
        add_job(session, **args)
    with catalog.reader() as session:
        assert list_jobs(session) == []


def test_job_filters(catalog):
    content = add_image(catalog, "city", tags=["city"], artist="Photographer")
    vangogh = add_image(catalog, "starry", "style", tags=["impressionism"], artist="Vincent van Gogh")
    monet = add_image(catalog, "lilies", "style", tags=["impressionism"], artist="Claude Monet")
    with catalog.session() as session:
        j1 = add_job(session, content_id=content, style_ids=[vangogh], method="gatys", params={})[0]
        j2 = add_job(session, content_id=content, style_ids=[monet], method="noop", params={}, priority=5)[0]
        session.flush()
        j1, j2 = j1.id, j2.id
    with catalog.reader() as session:
        ids = lambda **kw: [j["id"] for j in list_jobs(session, Filters(**kw))]  # noqa: E731
        assert ids() == [j2, j1]  # newest first
        assert ids(style="starry") == [j1]
        assert ids(artist="gogh") == [j1]
        assert ids(artist="photographer") == [j2, j1]  # the content's artist counts too
        assert ids(method="noop") == [j2]
        assert ids(tags=["city", "impressionism"]) == [j2, j1]
        assert ids(title="lilies") == [j2]
        assert ids(status="succeeded") == []
        assert ids(sort="-priority") == [j2, j1]
        job = list_jobs(session, Filters(style="lilies"))[0]
        assert job["styles"][0]["artist"] == "Claude Monet" and job["content"]["id"] == content


def test_every_listing_is_newest_first_so_limit_keeps_the_latest(catalog):
    """Issue 14 item 8."""
    from db.claims import claim_jobs
    from db.queries import list_artworks, list_runs
    from db.runs import ArtifactRecord, complete_run, start_run
    from tests.fixtures.databases import add_jobs

    jobs = add_jobs(catalog, 3)
    claim_jobs(catalog, 3, "w", 60)
    for job in jobs:
        complete_run(catalog, start_run(catalog, job, "w"), "w", artifacts=[
            ArtifactRecord("output", f"file:///o/{job}.png", f"{job:064x}", 1, "image/png", 8, 8)])
    with catalog.reader() as session:
        assert [j["id"] for j in list_jobs(session, Filters(limit=2))] == jobs[::-1][:2]
        assert [r["job_id"] for r in list_runs(session, Filters(limit=2))] == jobs[::-1][:2]
        assert [a["job_id"] for a in list_artworks(session, Filters(limit=2))] == jobs[::-1][:2]
        assert [i["id"] for i in list_images(session, Filters(limit=1))] == [max(i["id"] for i in list_images(session))]

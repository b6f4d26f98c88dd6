"""Issue 21, the web app: bad query strings are 400 pages (never a 500), writes come only from
the gallery's own pages, every response forbids framing and sniffing, failed tokens are
rate-limited, and stored files are hashed once, not on every Range request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_web import make_client, shown_artworks
from tests.web_gallery import FLOW_RUN, build_gallery

pytestmark = pytest.mark.integration


def lenient_client(url: str, store_url: str):
    """A client that answers a server error with its 500, as a browser sees it, instead of raising."""
    from fastapi.testclient import TestClient

    return TestClient(make_client(url, store_url).app, raise_server_exceptions=False)


@pytest.fixture
def gallery(catalog, tmp_path: Path):
    from storage.local import LocalStore

    g = build_gallery(catalog, LocalStore(tmp_path / "store"), artworks=2)
    return g, catalog.url, f"file://{tmp_path / 'store'}"


def test_a_page_number_in_other_digits_is_a_400(gallery):
    _, url, store_url = gallery
    client = lenient_client(url, store_url)
    for path in ["/", "/jobs", "/contents", "/styles"]:
        for page in ["²", "①", "١", "1²"]:
            response = client.get(path, params={"page": page})
            assert response.status_code == 400 and "expected a whole number" in response.text, (path, page)


@pytest.mark.parametrize(("query", "reason"), [
    ("method=nosuch", "method &#39;nosuch&#39;: no job in the catalog has it (methods: gatys)"),
    ("metric=nosuch", "metric &#39;nosuch&#39;: no run in the catalog records it"),
    ("artist=%00", "artist filter"),
    ("tag=%00x", "tag filter"),
    ("&".join(f"tag=t{i}" for i in range(1000)), "tag filter: 1000 values, at most 20"),
])
def test_bad_grid_filters_are_a_400_naming_the_filter(gallery, query, reason):
    _, url, store_url = gallery
    response = lenient_client(url, store_url).get("/?" + query)
    assert response.status_code == 400 and reason in response.text


def test_known_methods_and_metrics_still_filter(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url)
    assert shown_artworks(client.get("/?method=itn").text) == []  # offered by the form, no job yet: empty, not 400
    assert shown_artworks(client.get("/?method=gatys").text) == sorted(g.artworks, reverse=True)
    assert shown_artworks(client.get("/?metric=style_loss_drop").text) == sorted(g.artworks, reverse=True)


def test_too_many_tags_on_the_image_pages_is_a_400(gallery):
    _, url, store_url = gallery
    response = make_client(url, store_url).get("/contents?" + "&".join(f"tag=t{i}" for i in range(21)))
    assert response.status_code == 400 and "at most 20" in response.text


def test_every_response_forbids_framing_and_sniffing(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url)
    for path in ["/", "/jobs", f"/artworks/{g.artworks[0]}", f"/artworks/{g.artworks[0]}/image",
                 f"/artworks/{g.artworks[0]}/thumbnail", f"/images/{g.contents[0]}/file", "/static/style.css",
                 "/nowhere", "/?sort=bad"]:
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://testserver.evil.example"},
])
def test_a_write_from_another_site_is_refused_even_with_the_token(gallery, headers):
    _, url, store_url = gallery
    client = make_client(url, store_url, write_token="t")
    answer = client.post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "t"}, headers=headers)
    assert answer.status_code == 403 and "another site" in answer.text
    assert answer.headers["x-frame-options"] == "DENY"


def test_a_text_plain_post_is_refused(gallery):
    _, url, store_url = gallery
    client = make_client(url, store_url, write_token="t")
    answer = client.post("/jobs/rerun", content=f"batch={FLOW_RUN}&token=t",
                         headers={"Content-Type": "text/plain", "Origin": "http://testserver"})
    assert answer.status_code == 415


def test_a_same_origin_write_is_accepted(gallery):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _, url, store_url = gallery
    client = make_client(url, store_url, write_token="t")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        answer = client.post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "t"},
                             headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200 and "atelier jobs rerun-failed" in answer.text


def test_failed_tokens_are_rate_limited_per_address(gallery):
    from atelier.web.guard import FAILED_TOKENS_ALLOWED

    _, url, store_url = gallery
    client = make_client(url, store_url, write_token="t")
    for _ in range(FAILED_TOKENS_ALLOWED):
        assert client.post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "guess"}).status_code == 403
    limited = client.post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "t"})  # even the right one waits
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert "too many wrong tokens" in limited.text


def test_the_failed_token_window_slides():
    from atelier.web.guard import FailedTokens

    now = [0.0]
    limiter = FailedTokens(allowed=2, window_s=10, clock=lambda: now[0])
    limiter.failed("a")
    now[0] = 4
    limiter.failed("a")
    assert limiter.retry_after("a") == 6 and limiter.retry_after("b") == 0
    now[0] = 10.5  # the first failure has left the window
    assert limiter.retry_after("a") == 0


def test_a_range_in_an_unknown_unit_is_ignored(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url)
    whole = client.get(f"/artworks/{g.artworks[0]}/image")
    other = client.get(f"/artworks/{g.artworks[0]}/image", headers={"Range": "items=0-5"})
    assert other.status_code == 200 and other.content == whole.content
    assert client.get(f"/artworks/{g.artworks[0]}/image", headers={"Range": "bytes=0-5"}).status_code == 206


def test_a_stored_file_is_hashed_once_and_again_after_it_changes(catalog, tmp_path):
    from storage.local import LocalStore
    from tests.web_gallery import Gallery, add_video_artwork

    store = LocalStore(tmp_path / "store")
    g = Gallery()
    add_video_artwork(catalog, store, g)
    client = make_client(catalog.url, f"file://{store.root}")
    verified = client.app.state.verified
    clip = f"/artworks/{g.video_artwork}/image"
    for start in range(0, 400, 100):  # a player's seeks
        assert client.get(clip, headers={"Range": f"bytes={start}-{start + 1}"}).status_code == 206
    assert verified.hashed == 1

    with catalog.reader() as session:
        from db.models import ArtifactKind
        from db.queries import run_file

        path = store.path_for_uri(run_file(session, g.video_artwork, ArtifactKind.OUTPUT)["uri"])
    status = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size; the modification time is put back below
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    response = client.get(clip, headers={"Range": "bytes=0-1"})
    assert response.status_code == 404 and "corrupt" in response.text
    assert verified.hashed == 2

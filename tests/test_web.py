"""The gallery app through FastAPI's TestClient: pages, filters, paging, errors and the store
boundary, on SQLite and PostgreSQL, a local folder and S3 on loopback. (The browser tests are
in test_web_browser.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web_gallery import FLOW_RUN, HOSTILE_TAG, HOSTILE_TITLE, build_gallery

pytestmark = pytest.mark.integration


def make_client(database_url: str, store_url: str, *, endpoint_url: str | None = None, **config):
    from fastapi.testclient import TestClient

    from atelier.web.app import create_app
    from atelier.web.config import WebConfig

    return TestClient(create_app(WebConfig(database_url=database_url, store_url=store_url,
                                           s3_endpoint_url=endpoint_url, **config)))


def shown_artworks(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="tile">\s*<a href="/artworks/(\d+)"', html)]


@pytest.fixture
def gallery(catalog, tmp_path: Path):
    from storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    return build_gallery(catalog, store), catalog.url, f"file://{tmp_path / 'store'}"


def test_grid_newest_first_filters_and_pages(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url, page_size=2)
    newest = sorted(g.artworks, reverse=True)

    first = client.get("/")
    assert first.status_code == 200
    assert shown_artworks(first.text) == newest[:2]
    assert 'href="?page=2"' in first.text
    assert shown_artworks(client.get("/?page=3").text) == newest[4:]
    assert 'rel="next"' not in client.get("/?page=3").text

    by_style = client.get("/", params={"style": "Starry", "page": 1}).text  # a title reference, as in the CLI
    assert shown_artworks(by_style) == sorted(g.artworks[::2], reverse=True)[:2]
    assert 'href="?style=Starry&amp;page=2"' in by_style  # the pager keeps the filters
    by_tag = make_client(url, store_url).get("/", params={"tag": HOSTILE_TAG}).text
    assert set(shown_artworks(by_tag)) == set(g.artworks[1::2])
    assert shown_artworks(make_client(url, store_url).get("/?method=noop").text) == []
    assert shown_artworks(make_client(url, store_url).get("/?artist=gogh").text) == sorted(g.artworks[::2], reverse=True)
    assert shown_artworks(make_client(url, store_url).get("/?since=2999-01-01").text) == []

    assert shown_artworks(make_client(url, store_url).get("/?sort=oldest").text) == g.artworks
    best = make_client(url, store_url).get("/?metric=ssim_to_content&order=low").text
    assert shown_artworks(best) == g.artworks  # ssim grows with each artwork
    assert shown_artworks(client.get("/?metric=ssim_to_content&order=low&page=2").text) == g.artworks[2:4]


def test_artwork_page_has_everything_to_understand_and_remake_it(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url, prefect_ui_url="http://prefect.local:4200/")
    page = client.get(f"/artworks/{g.artworks[0]}").text

    assert f'src="/artworks/{g.artworks[0]}/image"' in page and 'src="/images/' in page
    assert "<polyline" in page and 'class="loss-total"' in page
    assert f'href="http://prefect.local:4200/runs/flow-run/{FLOW_RUN}"' in page
    assert "atelier stylize content-" in page and "--size 32 --iterations 20 --seed 0" in page
    assert "c3" * 32 in page  # the weights' sha256
    assert "ssim_to_content" in page and "compute 1.0 s" in page

    image = client.get(f"/artworks/{g.artworks[0]}/image?download=1")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert image.headers["content-disposition"].startswith("attachment")
    assert client.get(f"/artworks/{g.artworks[0]}/thumbnail").headers["content-type"] == "image/png"


def test_jobs_content_and_style_pages(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url)
    jobs = client.get("/jobs").text
    assert "failed (1)" in jobs and "pending (1)" in jobs
    assert "InvalidInputError" in jobs and "content image &lt;b&gt;too small&lt;/b&gt;" in jobs
    assert f"atelier jobs rerun-failed --job {g.failed_jobs[0]}" in jobs  # writes off: how to do it by hand
    assert re.findall(r'<tr class="(\w+)"><td>', client.get("/jobs?status=failed").text) == ["failed"]

    contents = client.get("/contents").text
    assert "Harbour" in contents and "Starry" not in contents
    style_page = client.get(f"/images/{g.styles[0]}").text
    assert "Vincent van Gogh" in style_page
    assert set(shown_artworks(style_page)) == set(g.artworks[::2])


def test_hostile_names_are_escaped(gallery):
    g, url, store_url = gallery
    client = make_client(url, store_url)
    for path in ["/", "/jobs", "/contents", "/styles", f"/images/{g.contents[1]}", f"/artworks/{g.artworks[1]}",
                 "/?" + "content=" + "%3Cscript%3E"]:
        html = client.get(path).text
        assert "<script>" not in html and "<b>bold" not in html, path
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&#34;quoted&#39; ../../etc/passwd" in \
        client.get(f"/images/{g.contents[1]}").text


@pytest.mark.parametrize(("path", "status", "reason"), [
    ("/artworks/999999", 404, "no artwork with id 999999"),
    ("/artworks/99999999999999999999", 404, "no artwork"),
    ("/images/0", 404, "no image with id 0"),
    ("/nowhere", 404, "no such page"),
    ("/artworks/abc", 400, "artwork_id"),
    ("/?sort=sideways", 400, "sort &#39;sideways&#39;: expected one of newest"),
    ("/?since=yesterday", 400, "since &#39;yesterday&#39;: expected an ISO date"),
    ("/?page=0", 400, "page &#39;0&#39;"),
    ("/?status=done", 400, "unknown status &#39;done&#39;"),
    ("/?style=no-such-painting", 400, "no-such-painting"),
    ("/?metric=a.b", 400, "metric &#39;a.b&#39;"),
    ("/jobs?status=lost", 400, "unknown status"),
])
def test_errors_are_pages_with_reasons(gallery, path, status, reason):
    _, url, store_url = gallery
    response = make_client(url, store_url).get(path)
    assert response.status_code == status
    assert reason in response.text and "<h1>" in response.text


def test_rerun_action_needs_the_token(gallery):
    g, url, store_url = gallery
    off = make_client(url, store_url).post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "anything"})
    assert off.status_code == 403 and "ATELIER_WEB_TOKEN" in off.text
    client = make_client(url, store_url, write_token="s3cret-token")
    assert client.post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "wrong"}).status_code == 403
    assert client.post("/jobs/rerun", data={"batch": FLOW_RUN}).status_code == 403
    assert client.post("/jobs/rerun", data={"batch": "other", "token": "s3cret-token"}).status_code == 400
    jobs = client.get("/jobs").text
    assert 'name="token"' in jobs and "s3cret-token" not in jobs


def test_rerun_without_a_prefect_server_says_how(gallery, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    g, url, store_url = gallery
    client = make_client(url, store_url, write_token="t")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        answer = client.post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "t"})
    assert answer.status_code == 200
    assert "No Prefect server is configured" in answer.text
    assert f"atelier jobs rerun-failed --job {g.failed_jobs[0]}" in answer.text


def test_local_store_serves_only_intact_files_inside_its_root(catalog, tmp_path):
    from db.images import register_image
    from storage.keys import content_key
    from storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"top secret bytes")
    digest = "ab" * 32
    link = store.root / content_key(digest, ".png")  # a valid key whose file is a symlink out of the root
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    with catalog.session() as session:
        outside = register_image(session, sha256="cd" * 32, role="content", uri=secret.as_uri(), width=1, height=1,
                                 format="PNG", bytes=16)[0].id
        linked = register_image(session, sha256=digest, role="content", uri=store.uri_for_key(link.relative_to(store.root).as_posix()),
                                width=1, height=1, format="PNG", bytes=16)[0].id
    spoiled = store.put_bytes(b"the painting", suffix=".png")
    store.path_for_uri(spoiled.uri).write_bytes(b"top secret overwrite")  # inside the root, but not its bytes
    with catalog.session() as session:
        corrupt = register_image(session, sha256=spoiled.sha256, role="content", uri=spoiled.uri, width=1, height=1,
                                 format="PNG", bytes=12)[0].id
    client = make_client(catalog.url, f"file://{store.root}")
    assert "corrupt" in client.get(f"/images/{corrupt}/file").text
    for image_id in (outside, linked, corrupt):
        response = client.get(f"/images/{image_id}/file")
        assert response.status_code == 404
        assert b"top secret" not in response.content


def test_s3_images_are_presigned_redirects_without_secrets(catalog, s3_store_url, monkeypatch):
    import httpx

    from storage import open_store

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "distinct-secret-key")  # the server accepts any; find it nowhere

    store = open_store(s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url)
    g = build_gallery(catalog, store)
    client = make_client(catalog.url, s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url)
    response = client.get(f"/artworks/{g.artworks[0]}/image", follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(s3_store_url.endpoint_url) and "Signature=" in location
    assert "distinct-secret-key" not in location + str(response.headers)
    assert httpx.get(location).content.startswith(b"\x89PNG")
    assert client.get(f"/artworks/{g.artworks[0]}").status_code == 200


@pytest.mark.postgres
def test_no_database_password_in_pages_or_headers(postgres_url, tmp_path):
    from sqlalchemy.engine import make_url

    from db.session import open_catalog
    from storage.local import LocalStore

    with_password = make_url(postgres_url).set(password="hunter2-db-secret").render_as_string(hide_password=False)
    catalog = open_catalog(with_password)  # the server trusts local connections, so any password works
    g = build_gallery(catalog, LocalStore(tmp_path / "store"))
    client = make_client(with_password, f"file://{tmp_path / 'store'}", write_token="hunter2-token")
    for path in ["/", "/jobs", "/contents", f"/artworks/{g.artworks[0]}", "/artworks/424242", "/?sort=bad"]:
        response = client.get(path)
        everything = response.text + str(response.headers)
        assert "hunter2" not in everything, path
    catalog.dispose()


@pytest.mark.e2e
def test_rerun_action_starts_the_rerun_failed_deployment(prefect_api, gallery):
    """With a Prefect server, the button asks it for a run of rerun-failed with exactly the batch's failed jobs."""
    from prefect.client.orchestration import get_client

    from flows.deployments import served_deployments

    from prefect.exceptions import ObjectNotFound

    g, url, store_url = gallery
    for deployment in served_deployments("0 2 * * *", "UTC"):
        deployment.apply()
    with get_client(sync_client=True) as client:  # another test may have deployed the work-pool one
        try:
            client.delete_deployment(client.read_deployment_by_name("rerun-failed/rerun-failed").id)
        except ObjectNotFound:
            pass
    answer = make_client(url, store_url, write_token="t").post("/jobs/rerun", data={"batch": FLOW_RUN, "token": "t"})
    assert answer.status_code == 200 and "Started flow run" in answer.text
    flow_run_id = re.search(r"flow run id ([0-9a-f-]{36})", answer.text).group(1)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        deployment = client.read_deployment(flow_run.deployment_id)
    # only `atelier serve`'s deployments exist here, so the served one runs
    assert deployment.name == "rerun-failed-served" and flow_run.parameters == {"job_ids": g.failed_jobs}

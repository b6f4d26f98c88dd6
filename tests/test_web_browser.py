"""The gallery in a real headless Chromium (Playwright with Debian's /usr/bin/chromium).

One browser and one live server (uvicorn on a free loopback port) serve the whole module:
browsing, filtering and paging; an artwork page whose images really load and whose plot is
drawn; a video artwork that plays; the models pages; hostile names shown as text, never run;
the 404, 400 and 403 pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web_gallery import (FLOW_RUN, HOSTILE_MODEL, HOSTILE_TAG, HOSTILE_TITLE, VIDEO_FPS, VIDEO_FRAMES, build_gallery,
                               live_server)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """A served gallery (page size 2, writes on with TOKEN) and what it holds."""
    from atelier.web.app import create_app
    from atelier.web.config import WebConfig
    from db.migrate import upgrade
    from db.session import open_catalog
    from storage.local import LocalStore

    folder = tmp_path_factory.mktemp("web-live")
    url = f"sqlite:///{folder / 'catalog.db'}"
    upgrade(url)
    catalog = open_catalog(url)
    gallery = build_gallery(catalog, LocalStore(folder / "store"), media=True)
    catalog.dispose()
    app = create_app(WebConfig(database_url=url, store_url=f"file://{folder / 'store'}", write_token=TOKEN,
                               prefect_ui_url="http://127.0.0.1:4200", page_size=2))
    with live_server(app) as base:
        yield base, gallery


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live):
    context = browser.new_context(java_script_enabled=True)
    # The app's first artwork page loads the engine's parameter types (torch): half a minute
    # and more on a busy machine.
    context.set_default_timeout(120_000)
    page = context.new_page()
    yield page
    context.close()


def tile_ids(page) -> list[int]:
    return [int(re.search(r"\d+$", href).group()) for href in
            page.locator("li.tile > a").evaluate_all("links => links.map(a => a.getAttribute('href'))")]


def test_browse_filter_and_page(page, live):
    base, g = live
    newest = sorted(g.artworks, reverse=True)
    page.goto(base + "/")
    assert tile_ids(page) == newest[:2]
    # the thumbnails load lazily (after the page's load event): wait for them, then every one must have loaded
    page.wait_for_function("() => [...document.querySelectorAll('li.tile img')].every(i => i.complete)")
    assert page.locator("li.tile img").evaluate_all("imgs => imgs.every(i => i.naturalWidth > 0)")
    page.click("text=Older →")
    assert "page=2" in page.url and tile_ids(page) == newest[2:4]

    page.fill("input[name=style]", "Starry")
    page.click("button[type=submit]")
    assert "style=Starry" in page.url
    starry = sorted(g.artworks[::2], reverse=True)
    assert tile_ids(page) == starry[:2]
    page.click("text=Older →")
    assert "style=Starry" in page.url and tile_ids(page) == starry[2:4]


def test_artwork_page_images_load_and_plot_is_drawn(page, live):
    base, g = live
    page.goto(f"{base}/artworks/{g.artworks[0]}")
    page.wait_for_load_state("load")
    page.wait_for_function("() => [...document.querySelectorAll('.sidebyside figure > a > img')].every(i => i.complete)")
    widths = page.locator(".sidebyside figure > a > img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 2 and all(w > 0 for w in widths), widths  # content and style
    page.wait_for_function("() => [...document.querySelectorAll('#output-zoom img')].every(i => i.complete)")
    tiles = page.locator("#output-zoom img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert tiles and all(w > 0 for w in tiles), tiles  # the output, in the zoomable viewer
    assert page.locator("svg.plot polyline.loss-total").count() == 1
    assert page.locator("svg.plot").bounding_box()["width"] > 100
    assert page.locator("pre.reproduce").inner_text() == f"atelier reproduce {g.artworks[0]}"
    assert "atelier stylize" in page.locator("pre.command:not(.reproduce)").inner_text()
    assert page.get_attribute("text=" + FLOW_RUN, "href") == f"http://127.0.0.1:4200/runs/flow-run/{FLOW_RUN}"


def test_hostile_names_and_tags_are_text(page, live):
    base, g = live
    for path in (f"/images/{g.contents[1]}", "/jobs", "/contents", f"/artworks/{g.artworks[1]}", "/models",
                 f"/models/{g.model_id}", f"/artworks/{g.video_artwork}", f"/artworks/{g.model_artwork}"):
        page.goto(base + path)
        assert page.evaluate("window.pwned") is None, path
        assert page.locator("script:not([src='/static/zoom.js'])").count() == 0, path  # the app's own viewer only
        assert page.locator("b", has_text="bold").count() == 0, path
    page.goto(f"{base}/images/{g.contents[1]}")
    assert page.locator("h1").inner_text().endswith(HOSTILE_TITLE)
    page.click(f"a.tag:has-text('{HOSTILE_TAG[:3]}')")  # the tag's link filters the grid by that exact tag
    assert tile_ids(page) == sorted(g.artworks[1::2], reverse=True)[:2]
    page.goto(f"{base}/models/{g.model_id}")
    assert page.locator("h1").inner_text() == f"Model #{g.model_id}: {HOSTILE_MODEL}"


def test_video_artwork_plays(page, live):
    base, g = live
    page.goto(f"{base}/artworks/{g.video_artwork}")
    video = page.locator("video#output")
    video.evaluate("v => v.play()")  # muted, so no user gesture is needed
    page.wait_for_function("() => document.querySelector('video#output').currentTime > 0.3", timeout=15_000)
    state = video.evaluate("v => ({ready: v.readyState, duration: v.duration, error: v.error && v.error.code,"
                           " width: v.videoWidth})")
    assert state["error"] is None and state["ready"] >= 2 and state["width"] == 64, state
    assert abs(state["duration"] - VIDEO_FRAMES / VIDEO_FPS) < 0.2, state
    video.evaluate("v => { v.pause(); v.currentTime = 1.5; }")  # seeking needs Range requests to work
    page.wait_for_function("() => { const v = document.querySelector('video#output'); return !v.seeking && "
                           "Math.abs(v.currentTime - 1.5) < 0.1; }", timeout=10_000)
    poster = page.evaluate(f"fetch('/artworks/{g.video_artwork}/thumbnail').then(r => r.headers.get('content-type'))")
    assert poster == "image/png"


def test_models_pages(page, live):
    base, g = live
    page.goto(base + "/")
    page.click("nav >> text=Models")
    page.click(f"a[href='/models/{g.model_id}'] >> nth=1")
    page.wait_for_load_state("load")
    assert page.locator("svg.plot").count() == 2  # training and validation losses
    assert page.locator("svg[aria-label='validation loss'] polyline.loss-total").count() == 1
    page.wait_for_function("() => [...document.querySelectorAll('main img')].every(i => i.complete)")
    widths = page.locator("main img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 3 and all(w > 0 for w in widths), widths  # style, preview, one sample
    page.click(f"li.tile a[href='/artworks/{g.model_artwork}'] >> nth=0")
    assert page.url.endswith(f"/artworks/{g.model_artwork}")


def test_error_pages(page, live):
    base, g = live
    response = page.goto(base + "/artworks/424242")
    assert response.status == 404 and "no artwork with id 424242" in page.inner_text("p.reason")
    response = page.goto(base + "/?since=last-week")
    assert response.status == 400 and "since 'last-week'" in page.inner_text("p.reason")

    page.goto(base + "/jobs")
    page.fill("input[name=token]", "not-the-token")
    with page.expect_navigation():
        page.click("text=Rerun failed")
    assert "wrong or missing token" in page.inner_text("p.reason") and page.locator("h1").inner_text().startswith("403")

    page.goto(base + "/jobs")
    page.fill("input[name=token]", TOKEN)
    with page.expect_navigation():
        page.click("text=Rerun failed")
    text = page.inner_text("main")  # started on a Prefect server (when the session has one), or how to do it by hand
    assert f"Rerun failed jobs {g.failed_jobs[0]}" in text
    assert "Started flow run" in text or f"atelier jobs rerun-failed --job {g.failed_jobs[0]}" in text

"""Issue 19 in a real Chromium: the artwork page's viewer zooms a "big" artwork to 1:1 from
tiles, and the pixels it shows there are the artwork's own, without the whole file loaded."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.test_web_browser import browser  # noqa: F401  (fixture)
from tests.test_web_tiles import TILE, add_big_artwork, big_picture
from tests.web_gallery import build_gallery, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, np.ndarray]]:
    from atelier.web.app import create_app
    from atelier.web.config import WebConfig
    from db.migrate import upgrade
    from db.session import open_catalog
    from storage.local import LocalStore

    folder = tmp_path_factory.mktemp("web-zoom")
    url = f"sqlite:///{folder / 'catalog.db'}"
    upgrade(url)
    catalog = open_catalog(url)
    store = LocalStore(folder / "store")
    pixels = big_picture()
    artwork = add_big_artwork(catalog, store, build_gallery(catalog, store, artworks=1), pixels)
    catalog.dispose()
    app = create_app(WebConfig(database_url=url, store_url=f"file://{folder / 'store'}", cache_dir=folder / "cache",
                               tile_size=TILE))
    with live_server(app) as base:
        yield base, artwork, pixels


TILES_LOADED = """() => {
  const tiles = [...document.querySelectorAll('#output-zoom img.zoom-tile')];
  return tiles.length > 0 && tiles.every(t => t.complete && t.naturalWidth > 0);
}"""


def test_the_viewer_shows_the_artworks_own_pixels_at_1_to_1(browser, served):  # noqa: F811
    base, artwork, pixels = served
    context = browser.new_context(viewport={"width": 520, "height": 600}, device_scale_factor=1)
    context.set_default_timeout(120_000)  # the first artwork page loads torch: slow on a busy machine
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        page.goto(f"{base}/artworks/{artwork}")
        zoom = page.locator("#output-zoom")
        page.wait_for_function(TILES_LOADED)
        fit_scale = float(zoom.get_attribute("data-view").split()[2])
        assert fit_scale < 1  # the whole artwork in view, from a coarser level

        page.click("#output-zoom button:has-text('1:1')")
        page.wait_for_function(TILES_LOADED)
        x0, y0, scale = (float(v) for v in zoom.get_attribute("data-view").split())
        assert scale == 1 and x0 == int(x0) and y0 == int(y0)
        levels = set(page.locator("#output-zoom img.zoom-tile").evaluate_all("ts => ts.map(t => t.dataset.level)"))
        assert levels == {"0"}

        shot = np.asarray(Image.open(io.BytesIO(zoom.screenshot(animations="disabled"))).convert("RGB")).astype(int)
        # rows under the zoom buttons, which cover the top right corner
        below = 2 + round(zoom.evaluate("z => z.querySelector('.zoom-controls').getBoundingClientRect().bottom"
                                        " - z.getBoundingClientRect().top"))
        height, width = pixels.shape[:2]
        x, y = int(x0), int(y0)
        rows, cols = min(shot.shape[0], height - y) - below - 2, min(shot.shape[1], width - x) - 2
        assert rows > 100 and cols > 200, (rows, cols)
        shown = shot[below + 1:below + 1 + rows, 1:1 + cols]
        # The box may sit on a fractional page offset, which Chromium snaps to a whole pixel: the
        # artwork's pixels, unresampled, within one pixel of where the viewer puts them.
        errors = {(dy, dx): np.abs(shown - pixels[y + below + 1 + dy:y + below + 1 + dy + rows,
                                                  x + 1 + dx:x + 1 + dx + cols]).max()
                  for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
        assert min(errors.values()) <= 2, errors
    finally:
        context.close()
    tiles = [u for u in requested if "/tiles/0/" in u]
    assert tiles and not [u for u in requested if u.endswith(f"/artworks/{artwork}/image")]

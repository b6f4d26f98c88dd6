"""Issue 19: a big artwork is looked at through zoom tiles that the app cuts once per artwork
(level 0 its own pixels, each next level half as big), never by decoding it per request."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_web import make_client
from tests.web_gallery import WORKER, Gallery, build_gallery

pytestmark = pytest.mark.integration

BIG = (600, 424)  # "big" next to the tiny tile size the tests use
TILE = 128


def big_picture(size: tuple[int, int] = BIG) -> np.ndarray:
    """Noise over a gradient: every pixel differs, so a misplaced or resampled tile shows."""
    rng = np.random.default_rng(19)
    width, height = size
    ramp = np.linspace(0, 180, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 75, (height, width, 3))
    return (ramp + noise).clip(0, 255).astype(np.uint8)


def add_big_artwork(catalog, store, g: Gallery, pixels: np.ndarray) -> int:
    """A gatys artwork whose output is `pixels` (a PNG), recorded as a worker would."""
    from db.claims import claim_jobs
    from db.jobs import add_job
    from db.runs import ArtifactRecord, complete_run, start_run

    data = io.BytesIO()
    Image.fromarray(pixels).save(data, format="PNG")
    height, width = pixels.shape[:2]
    stored = store.put_bytes(data.getvalue(), suffix=".png")
    thumb = store.put_bytes(data.getvalue(), suffix=".png")
    with catalog.session() as session:
        job, _ = add_job(session, content_id=g.contents[0], style_ids=[g.styles[0]], method="gatys",
                         params={"size": width, "iterations": 3, "seed": 19})
        session.flush()
        job_id = job.id
    claim_jobs(catalog, 1, WORKER, 600, job_ids=[job_id])
    run_id = start_run(catalog, job_id, WORKER, seed=19, device="cpu", host="test")
    return complete_run(catalog, run_id, WORKER, timings={"compute": 1.0}, metrics={}, artifacts=[
        ArtifactRecord("output", stored.uri, stored.sha256, stored.size, "image/png", width, height),
        ArtifactRecord("thumbnail", thumb.uri, thumb.sha256, thumb.size, "image/png", width, height)])[0]


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture
def big(catalog, tmp_path: Path):
    from storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    g = build_gallery(catalog, store, artworks=1)
    pixels = big_picture()
    artwork = add_big_artwork(catalog, store, g, pixels)
    client = make_client(catalog.url, f"file://{store.root}", cache_dir=tmp_path / "cache", tile_size=TILE)
    return client, artwork, pixels, tmp_path / "cache"


def test_tiles_are_the_artworks_pixels_at_each_level(big):
    client, artwork, pixels, cache = big
    height, width = pixels.shape[:2]
    page = client.get(f"/artworks/{artwork}").text
    # 600 px: 600, 300, 150 and 75 px levels, the last one tile
    assert f'data-width="{width}"' in page and f'data-tile="{TILE}"' in page and 'data-levels="4"' in page
    assert '<script src="/static/zoom.js" defer></script>' in page

    corner = client.get(f"/artworks/{artwork}/tiles/0/4_3.png")  # the bottom right: 600 - 512 by 424 - 384
    assert corner.status_code == 200 and corner.headers["content-type"] == "image/png"
    assert np.array_equal(png_pixels(corner.content), pixels[384:, 512:])
    inner = png_pixels(client.get(f"/artworks/{artwork}/tiles/0/1_2.png").content)
    assert np.array_equal(inner, pixels[256:384, 128:256])

    half = np.asarray(Image.fromarray(pixels).reduce(2))
    assert np.array_equal(png_pixels(client.get(f"/artworks/{artwork}/tiles/1/2_1.png").content), half[128:, 256:])
    whole = png_pixels(client.get(f"/artworks/{artwork}/tiles/3/0_0.png").content)
    assert whole.shape == (53, 75, 3)


def test_the_artwork_is_decoded_once_and_each_tile_cut_once(big):
    client, artwork, pixels, cache = big
    tiles = client.app.state.tiles
    wanted = [(0, 0, 0), (0, 4, 3), (1, 1, 1), (2, 0, 0), (3, 0, 0)]
    for level, col, row in wanted:
        assert client.get(f"/artworks/{artwork}/tiles/{level}/{col}_{row}.png").status_code == 200
    assert tiles.decoded == 1
    cut = sorted(p.relative_to(cache).parts[-2:] for p in cache.rglob("*.png"))
    assert cut == sorted((str(level), f"{col}_{row}.png") for level, col, row in wanted)  # only those asked for

    tile = next(cache.rglob("0/0_0.png"))
    tile.write_bytes(b"kept")  # a tile already cut is served from its file, not cut again
    assert client.get(f"/artworks/{artwork}/tiles/0/0_0.png").content == b"kept"


@pytest.mark.parametrize("tile", ["4/0_0.png", "0/5_0.png", "0/0_4.png", "1/3_0.png", "0/-1_0.png", "0/a_0.png"])
def test_a_tile_outside_the_pyramid_is_refused(big, tile):
    client, artwork, _, _ = big
    response = client.get(f"/artworks/{artwork}/tiles/{tile}")
    assert response.status_code in (400, 404) and "<h1>" in response.text


def test_a_video_artwork_has_no_tiles(catalog, tmp_path):
    from storage.local import LocalStore

    g = build_gallery(catalog, LocalStore(tmp_path / "store"), artworks=1, media=True)
    client = make_client(catalog.url, f"file://{tmp_path / 'store'}", cache_dir=tmp_path / "cache")
    assert client.get(f"/artworks/{g.video_artwork}/tiles/0/0_0.png").status_code == 404


def test_tiles_of_an_artwork_in_s3_are_cut_from_a_checked_copy(catalog, s3_store_url, tmp_path):
    from storage import open_store

    store = open_store(s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url)
    g = build_gallery(catalog, store, artworks=1)
    pixels = big_picture()
    artwork = add_big_artwork(catalog, store, g, pixels)
    client = make_client(catalog.url, s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url,
                         cache_dir=tmp_path / "cache", tile_size=TILE)
    tile = client.get(f"/artworks/{artwork}/tiles/0/2_1.png")
    assert tile.status_code == 200 and np.array_equal(png_pixels(tile.content), pixels[128:256, 256:384])
    assert client.get(f"/artworks/{artwork}/tiles/1/0_0.png").status_code == 200
    assert client.app.state.tiles.decoded == 1  # downloaded and decoded once

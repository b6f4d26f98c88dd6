"""Models pages, video artworks and the reproduce command on the artwork page, through TestClient
(the browser plays the video in test_web_browser.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_web import make_client, shown_artworks
from tests.web_gallery import HOSTILE_MODEL, VIDEO_FPS, VIDEO_FRAMES, build_gallery

pytestmark = pytest.mark.integration


@pytest.fixture
def media(catalog, tmp_path: Path):
    from storage.local import LocalStore

    g = build_gallery(catalog, LocalStore(tmp_path / "store"), artworks=1, media=True)
    return g, make_client(catalog.url, f"file://{tmp_path / 'store'}")


def test_models_list_and_detail_show_style_curves_and_samples(media):
    g, client = media
    listing = client.get("/models")
    assert listing.status_code == 200
    assert f'href="/models/{g.model_id}"' in listing.text and f'src="/artworks/{g.model_preview}/thumbnail"' in listing.text
    assert "40 steps" in listing.text and "validation 1" in listing.text

    page = client.get(f"/models/{g.model_id}").text
    assert 'aria-label="training loss"' in page and 'aria-label="validation loss"' in page
    # the validation plot has one point per recorded validation (4), the training one per step (40)
    plots = re.findall(r'<svg .*?</svg>', page, re.S)
    totals = [re.search(r'class="loss-total"[^>]*points="([^"]*)"', svg).group(1).split() for svg in plots]
    assert sorted(len(points) for points in totals) == [4, 40]
    assert shown_artworks(page) == [g.model_artwork]  # made with it: the itn job naming the model
    assert "Kandinsky" in page and f'src="/artworks/{g.model_preview}/image"' in page
    assert "<script>window.pwned" not in page and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    # the name is shell-quoted in the command (and HTML-escaped around that)
    assert "--model &#39;&lt;script&gt;window.pwned=1&lt;/script&gt;&#39;&#34;&#39;&#34;&#39;model" in page

    assert client.get("/models/424242").status_code == 404
    assert "no model with id 424242" in client.get("/models/424242").text
    assert client.get("/models/nope").status_code == 400


def test_video_artwork_plays_from_the_store_with_range_requests(media):
    g, client = media
    page = client.get(f"/artworks/{g.video_artwork}").text
    assert f'<video id="output" src="/artworks/{g.video_artwork}/image" poster="/artworks/{g.video_artwork}/thumbnail"' in page
    assert f"{VIDEO_FRAMES} frames at {VIDEO_FPS} fps" in page
    assert "atelier stylize-video dusk.mp4" in page and "--method gatys" in page
    # a video run is not re-run by reproduce: the page says why instead of offering the command
    assert 'class="command reproduce"' not in page and "Not re-run by <code>atelier reproduce</code>: method video_gatys" in page
    assert "--param frames=24" in page and "--param size=64" in page

    whole = client.get(f"/artworks/{g.video_artwork}/image")
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes" and whole.content[4:8] == b"ftyp"
    part = client.get(f"/artworks/{g.video_artwork}/image", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"

    # the clip's own page lists what was made from it
    assert f'href="/artworks/{g.video_artwork}"' in client.get(f"/images/{g.video_clip}").text

    clip = client.get(f"/artworks/{g.video_artwork}/image?download=1")
    assert clip.headers["content-disposition"].startswith("attachment") and ".mp4" in clip.headers["content-disposition"]


def test_picture_artwork_page_offers_atelier_reproduce(media):
    g, client = media
    page = client.get(f"/artworks/{g.artworks[0]}").text
    assert f'<pre class="command reproduce"><code>atelier reproduce {g.artworks[0]}</code></pre>' in page
    assert "atelier stylize" in page  # the explicit command too


def test_an_artwork_made_with_a_model_names_the_model_in_its_command(media):
    g, client = media
    response = client.get(f"/artworks/{g.model_artwork}")
    assert response.status_code == 200  # itn's parameters have no default model: the page must not need one
    command = re.search(r'<pre class="command"><code>(.*?)</code></pre>', response.text, re.S).group(1)
    assert command.startswith("atelier stylize ") and " --method itn --model &#39;&lt;script&gt;" in command
    assert "style-" not in command and "--size 64" in command  # the model carries the style: no style file

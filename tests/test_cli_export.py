"""Issue 14 item 19: `atelier artworks export DIR [filters]` writes readable file names and a
JSON sidecar; PNG byte for byte (verified), JPEG/WebP re-encoded with their provenance."""

from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image

from tests.fixtures.prefect import create_gallery_jobs, write_gallery_inputs

pytestmark = pytest.mark.integration


@pytest.mark.unit
def test_export_names_are_safe_readable_words():
    from atelier.export import export_name

    artwork = {"id": 7, "content": {"id": 1, "title": "Tübingen / Neckar\nfront"},
               "styles": [{"id": 2, "title": "The Starry Night"}, {"id": 3, "title": "../../etc"}]}
    assert export_name(artwork) == "7-t-bingen-neckar-front-x-the-starry-night+etc.png"
    assert export_name({**artwork, "content": {"id": 1, "title": None}}, ".jpg").startswith("7-image-1-x-")


def test_export_writes_files_and_a_sidecar(prefect_api, atelier, tmp_path):
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    app.cli("gallery", "run", expect=0)

    out = tmp_path / "export"
    result = app.cli("artworks", "export", str(out), "--style", "strokes-1")
    (png,) = sorted(out.glob("*.png"))
    assert png.name.endswith("-astronaut-x-strokes-1.png") and "wrote" in result.output
    (entry,) = json.loads((out / "artworks.json").read_text())
    assert entry["file"] == png.name and entry["params"] == {"size": 32} and entry["method"] == "noop"
    assert hashlib.sha256(png.read_bytes()).hexdigest() == entry["sha256"]
    assert "kept" in app.cli("artworks", "export", str(out), "--style", "strokes-1").output

    app.cli("artworks", "export", str(tmp_path / "jpg"), "--format", "jpg", "--quality", "80")
    jpgs = sorted((tmp_path / "jpg").glob("*.jpg"))
    assert len(jpgs) == 2
    from style_engine.images import read_exif_metadata

    assert json.loads(read_exif_metadata(Image.open(jpgs[0]))["atelier:params"]) == {"size": 32}

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


def sidecar_ids(folder) -> list[int]:
    return [entry["artwork_id"] for entry in json.loads((folder / "artworks.json").read_text())]


def test_exports_into_one_folder_add_up_and_a_filter_matching_nothing_writes_nothing(prefect_api, atelier, tmp_path):
    """Issue 21: the second export (or one matching nothing) replaced artworks.json, losing the files already there."""
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    app.cli("gallery", "run", expect=0)

    out = tmp_path / "export"
    app.cli("artworks", "export", str(out), "--style", "strokes-0")
    (first,) = sidecar_ids(out)
    app.cli("artworks", "export", str(out), "--style", "strokes-1")
    (second,) = set(sidecar_ids(out)) - {first}
    assert sidecar_ids(out) == [first, second] and len(list(out.glob("*.png"))) == 2
    app.cli("artworks", "export", str(out), "--style", "strokes-0")  # again: replaced in place, not doubled
    assert sidecar_ids(out) == [first, second]

    before = (out / "artworks.json").read_bytes()
    nothing = app.cli("artworks", "export", str(out), "--method", "nosuch")
    assert "no artworks match: nothing written" in nothing.output
    assert (out / "artworks.json").read_bytes() == before
    app.cli("artworks", "export", str(tmp_path / "never"), "--method", "nosuch")
    assert not (tmp_path / "never").exists()

    (out / "artworks.json").write_text('{"not": "a sidecar"}')
    refused = app.cli("artworks", "export", str(out), expect=2)
    assert "artworks.json: not a list of artworks" in refused.output
    assert (out / "artworks.json").read_text() == '{"not": "a sidecar"}'


def test_export_into_a_path_it_cannot_write_is_one_line_and_files_get_the_umask(prefect_api, atelier, tmp_path):
    """Issue 21: a file as the folder, or a folder that cannot be written, gave a traceback; files were 0600."""
    import os
    import stat
    import subprocess

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    app.cli("gallery", "run", expect=0)

    a_file = tmp_path / "inputs" / "content" / "astronaut.png"
    assert "astronaut.png: is a file, not a folder" in app.cli("artworks", "export", str(a_file), expect=2).output
    under = app.cli("artworks", "export", str(a_file / "sub"), expect=2).output
    assert "astronaut.png is a file, not a folder" in under
    assert "cannot create this folder" in app.cli("artworks", "export", "/proc/atelier-export", expect=2).output
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)]).returncode == 0:
        try:
            assert "Read-only file system" in app.cli("artworks", "export", str(read_only), expect=2).output
        finally:
            subprocess.run(["umount", "-l", str(read_only)], check=False)

    old = os.umask(0o022)
    try:
        app.cli("artworks", "export", str(tmp_path / "shared"))
        app.cli("artworks", "export", str(tmp_path / "shared-tiff"), "--format", "tiff")
    finally:
        os.umask(old)
    written = [*(tmp_path / "shared").iterdir(), *(tmp_path / "shared-tiff").iterdir()]
    assert len(written) == 4 and {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o644}


def artwork_row(stored, artwork_id: int = 9, **extra) -> dict:
    """What `db.queries` gives `export_artworks` for one artwork."""
    return {"id": artwork_id, "uri": stored.uri, "sha256": stored.sha256, "width": 40, "height": 30, "job_id": 3,
            "run_id": 4, "method": "gatys", "params": {"size": 40}, "content": {"id": 1, "title": "Tübingen"},
            "styles": [{"id": 2, "title": "Starry Night", "weight": 1.0}], "created_at": "2026-01-01T00:00:00",
            "related_uris": {}, **extra}


@pytest.mark.unit
def test_tiff_export_is_lossless_and_carries_the_provenance(tmp_path):
    """Issue 19: print shops ask for TIFF; the pixels are the stored master's, the provenance in ImageDescription."""
    import numpy as np

    from atelier.export import export_artworks
    from storage.local import LocalStore
    from style_engine.images import png_bytes, read_exif_metadata
    from tests.fixtures.images import skimage_image

    store = LocalStore(tmp_path / "store")
    picture = skimage_image("coffee", 40)
    provenance = {"Software": "atelier", "atelier:params": {"size": 40}, "atelier:method": "gatys"}
    stored = store.put_bytes(png_bytes(picture, provenance), suffix=".png")

    (entry,) = export_artworks(store, [artwork_row(stored)], tmp_path / "print", suffix=".tiff")
    printed = Image.open(tmp_path / "print" / entry.file)
    assert entry.file == "9-t-bingen-x-starry-night.tiff" and printed.format == "TIFF"
    assert printed.info["compression"] in ("tiff_adobe_deflate", "tiff_lzw")
    assert np.array_equal(np.asarray(printed.convert("RGB")), np.asarray(picture))
    fields = read_exif_metadata(printed)
    assert json.loads(fields["atelier:params"]) == {"size": 40} and fields["atelier:method"] == "gatys"
    assert fields["Software"] == "atelier"


def test_video_artworks_export_as_mp4_with_their_poster_in_any_format(prefect_api, atelier, tmp_path):
    """Issue 21: a clip went out as .png (an MP4 under a PNG name); with --format jpg the export died."""
    from tests.video_clips import panning_frames, write_clip

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=1, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    app.cli("catalog", "add", str(write_clip(tmp_path / "pan.mp4", panning_frames(3), fps=10)), "--role", "video")
    app.cli("jobs", "add", "--content", "pan", "--style", "strokes-0", "--method", "video_gatys", "--param", "size=48",
            "--param", "iterations=2", "--param", "frame_iterations=2", "--param", "frames=2")
    app.cli("gallery", "run", expect=0)

    for file_format in ("png", "jpg"):
        out = tmp_path / file_format
        app.cli("artworks", "export", str(out), "--format", file_format)
        (clip,) = out.glob("*.mp4")
        (picture,) = out.glob(f"*-astronaut-x-strokes-0.{file_format}")
        entries = {entry["file"]: entry for entry in json.loads((out / "artworks.json").read_text())}
        assert set(entries) == {clip.name, picture.name}
        assert hashlib.sha256(clip.read_bytes()).hexdigest() == entries[clip.name]["sha256"]
        poster = out / entries[clip.name]["poster"]
        assert poster.name == clip.name.removesuffix(".mp4") + ".poster.png" and Image.open(poster).format == "PNG"
        from tasks.video_io import probe_video

        assert probe_video(clip).frames == 2
        assert entries[picture.name]["poster"] is None

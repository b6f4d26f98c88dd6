"""The report step never takes the run down (issue 13 item 2): a title with a newline, a
thumbnail gone from the store and a full disk each degrade one item (a placeholder tile, a
note), while the flow's state and the exit code follow the jobs alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = pytest.mark.integration


@pytest.mark.unit
def test_display_text_flattens_control_characters_and_shortens():
    from db.text import display_text

    assert display_text("Harbour\nat\tnight\r\x00!") == "Harbour at night !"
    assert display_text("x" * 50, limit=10) == "x" * 9 + "…"
    assert display_text(None) == ""


@pytest.mark.unit
def test_contact_sheet_lays_out_multiline_captions_and_placeholders():
    from tasks.contact_sheet import TILE, Tile, compose_contact_sheet

    picture = PILImage.new("RGB", (40, 30), (0, 128, 255))
    sheet = compose_contact_sheet([Tile(picture, ("line\none", "two\nlines")), Tile(None, ("gone",), missing=True),
                                   Tile(None, ("failed",))])
    assert sheet.width >= 2 * TILE


@pytest.mark.unit
def test_artifacts_hold_no_local_path_file_link_or_presigned_url():
    from flows.report import BatchReport, JobLine, markdown_summary, public_link, table_rows

    ok = JobLine(1, "succeeded", "gatys", 64, "Harbour | night", "Stars", 1.0, "file:///s/objects/ab/ab12.png",
                 "file:///s/objects/cd/cd34.png", None, artwork_id=7)
    bad = JobLine(2, "failed", "gatys", 64, "Harbour", "Stars", None, None, None, "InvalidInputError: " + "x" * 400,
                  error_type="InvalidInputError")
    report = BatchReport("gallery", (ok, bad), contact_sheet="file:///s/objects/ef/ef56.png",
                         contact_sheet_at="/s/objects/ef/ef56.png?X-Amz-Signature=abc")
    for links in ({}, {"file:///s/objects/ab/ab12.png": public_link("https://pics.example/", "file:///s",
                                                                     "file:///s/objects/ab/ab12.png")}):
        text = markdown_summary(report, links) + repr(table_rows(report, links))
        assert "Signature" not in text and "](file:" not in text and "](/" not in text and "'link': 'file:" not in text
        assert "artwork 7" in text and "Harbour \\| night" in text
    assert "](https://pics.example/objects/ab/ab12.png)" in markdown_summary(report, links)
    assert all(len(row["error"]) <= 160 for row in table_rows(report))


def _run_noop_gallery(app, tmp_path: Path):
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")


def test_a_title_with_a_newline_does_not_stop_the_report(prefect_api, atelier, tmp_path):
    from db.models import Image

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    _run_noop_gallery(app, tmp_path)
    with app.workshop().catalog.session() as session:
        for image in session.query(Image):
            image.title = f"{image.title}\nsecond line\twith a tab"
    result = app.cli("gallery", "run", "--limit", "10", expect=0)
    assert "2 of 2 jobs succeeded" in result.output and "contact sheet:" in result.output
    assert "second line with a tab" in " ".join(result.output.split())


def _report_flow():
    from prefect import flow, get_run_logger

    from flows.report import report_batch
    from atelier.settings import get_settings
    from tasks.workshop import WorkshopConfig, workshop_for

    @flow(name="report-only")
    def report_only(job_ids: list[int]):
        workshop = workshop_for(WorkshopConfig.from_settings(get_settings()))
        return report_batch(workshop, "report-only", job_ids, get_run_logger())

    return report_only


def test_a_thumbnail_missing_from_the_store_becomes_a_placeholder_and_a_note(prefect_api, atelier, tmp_path):
    from db.models import Artifact, Job

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    _run_noop_gallery(app, tmp_path)
    app.cli("gallery", "run", "--limit", "10", expect=0)
    thumbnail = next(a for a in catalog_rows(app, Artifact) if a.kind == "thumbnail")
    app.workshop().store.path_for_uri(thumbnail.uri).unlink()

    state = _report_flow()([job.id for job in catalog_rows(app, Job)], return_state=True)

    assert state.is_completed()
    report = state.result()
    assert report.contact_sheet and app.workshop().store.exists(report.contact_sheet)
    assert len(report.succeeded) == 2
    assert any("thumbnail not shown" in note and "no object at" in note for note in report.notes)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (a disk that really fills up); skips where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write zeros to `path` until its file system has not one byte left."""
    with path.open("ab", buffering=0) as out:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError:
                pass


def test_a_full_disk_loses_the_contact_sheet_not_the_run(prefect_api, atelier, tmp_path, small_disk):
    from db.models import Job

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{small_disk / 'store'}")
    _run_noop_gallery(app, tmp_path)
    app.cli("gallery", "run", "--limit", "10", expect=0)
    for sheet in (small_disk / "store").rglob("*.png"):  # the first run's sheet would be reused as is
        if sheet.stat().st_size > 2000:
            sheet.unlink()
    _fill(small_disk / "filler")

    state = _report_flow()([job.id for job in catalog_rows(app, Job)], return_state=True)

    assert state.is_completed()
    report = state.result()
    assert report.contact_sheet is None and len(report.succeeded) == 2
    (note,) = [note for note in report.notes if note.startswith("no contact sheet")]
    assert "StorageWriteError" in note and str(small_disk / "store") in note and "No space left" in note

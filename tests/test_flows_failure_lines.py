"""Issue 14 item 10: expected failures print one line per failed job, naming the image by id
and title (not a store path) and how to fix it; tracebacks only with --verbose."""

from __future__ import annotations

import pytest

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = pytest.mark.integration


def test_a_corrupt_style_is_one_line_naming_the_image_and_the_fix(prefect_api, atelier, tmp_path):
    from db.models import Image

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    spoiled = next(image for image in catalog_rows(app, Image) if image.source_name == "strokes-1.png")
    app.workshop().store.path_for_uri(spoiled.uri).write_bytes(b"not the painting")

    result = app.cli("gallery", "run", expect=1)

    assert "1 of 2 jobs succeeded" in result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "failed job" in line]
    (line,) = lines
    assert f"the stored original of style image {spoiled.id} (strokes-1) is corrupt" in line
    assert spoiled.sha256 not in line
    fix = result.output.splitlines()[result.output.splitlines().index(line) + 1]
    assert "to fix:" in fix and "atelier catalog add" in fix and "rerun-failed --job" in fix

    verbose = app.cli("jobs", "rerun-failed", "--verbose", expect=1)
    assert "Traceback" in verbose.output


@pytest.mark.unit
def test_a_refused_input_keeps_its_reason_naming_the_input_by_title():
    """A clip that the store returned intact but whose frames a job cannot have: the line says
    so, instead of blaming the stored original (issue 21)."""
    from flows.report import JobLine, explain_failure

    sha = "ab" * 32
    error = (f"video 3 (file:///srv/store/objects/ab/{sha}.mp4): frame range 0..8 is outside the clip "
             "(frames 0..5)")
    line = JobLine(7, "failed", "video", 64, "squirrel", "starry", None, None, None, error,
                   error_type="InvalidInputError", inputs=(("content", 3, "squirrel", sha),))

    reason, fix = explain_failure(line)

    assert reason == "video 3 (squirrel): frame range 0..8 is outside the clip (frames 0..5)"
    assert "jobs add" in fix

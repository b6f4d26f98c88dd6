"""The Prefect artifacts of a gallery run link to the gallery's pages when ATELIER_WEB_URL is set."""

from __future__ import annotations

import pytest

from tests.fixtures.prefect import create_gallery_jobs, write_gallery_inputs

WEB = "https://gallery.example.org/atelier/"


@pytest.mark.unit
def test_summary_and_table_link_artworks_and_failures_only_when_the_web_url_is_set():
    from flows.report import BatchReport, JobLine, markdown_summary, table_rows

    ok = JobLine(1, "succeeded", "gatys", 64, "Harbour", "Stars", 1.0, "file:///s/o/ab.png", "file:///s/o/cd.png", None,
                 artwork_id=7)
    bad = JobLine(2, "failed", "gatys", 64, "Harbour", "Stars", None, None, None, "InvalidInputError: small",
                  error_type="InvalidInputError")
    report = BatchReport("gallery", (ok, bad))

    summary = markdown_summary(report, {"file:///s/o/ab.png": "https://pics.example/o/ab.png"}, WEB)
    assert "[artwork 7](https://gallery.example.org/atelier/artworks/7) ([picture](https://pics.example/o/ab.png))" in summary
    assert "## Failed ([in the gallery](https://gallery.example.org/atelier/jobs?status=failed))" in summary
    assert "[gallery](https://gallery.example.org/atelier/)" in summary
    assert [row["page"] for row in table_rows(report, web_url=WEB)] == ["https://gallery.example.org/atelier/artworks/7", ""]

    plain = markdown_summary(report) + repr(table_rows(report))
    assert "gallery.example" not in plain and "](" not in plain


@pytest.mark.integration
def test_a_gallery_runs_artifacts_link_to_its_artwork_pages(prefect_api, atelier, tmp_path):
    from db.queries import Filters, list_artworks
    from flows.gallery import gallery
    from tests.test_flows_gallery import flow_run_artifacts

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", web_url=WEB)
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")

    state = gallery(limit=10, return_state=True)

    assert state.is_completed()
    with app.workshop().catalog.reader() as session:
        artworks = [a["id"] for a in list_artworks(session, Filters())]
    assert len(artworks) == 2
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    summary = next(a for a in artifacts if a.type == "markdown").data
    table = next(a for a in artifacts if a.type == "table").data
    for artwork_id in artworks:
        page = f"https://gallery.example.org/atelier/artworks/{artwork_id}"
        assert f"[artwork {artwork_id}]({page})" in summary and page in table

"""`atelier demo --data DIR` on the embedded defaults; a second run reuses the catalog and does nothing twice."""

from __future__ import annotations

import pytest

from tests.fixtures.prefect import catalog_rows, write_gallery_inputs

pytestmark = pytest.mark.e2e


def test_demo_runs_once_then_reuses_the_catalog(prefect_api, atelier, tmp_path):
    from db.models import Artifact, Job, Run

    app = atelier(f"sqlite:///{tmp_path / '.atelier' / 'catalog.db'}", f"file://{tmp_path / '.atelier' / 'artifacts'}")
    write_gallery_inputs(tmp_path / "mine", contents=1, styles=1)

    quick = ("--data", str(tmp_path / "mine"), "--size", "48", "--iterations", "2", "--itn-steps", "2")
    first = app.cli("demo", *quick)
    assert "gallery: 2 of 2 jobs succeeded" in first.output and "contact sheet:" in first.output
    assert "gallery: 1 of 1 jobs succeeded" in first.output  # the itn job, with the model trained once
    assert first.output.rstrip().splitlines()[-1].startswith("open the gallery of this catalog: atelier web")
    jobs = catalog_rows(app, Job)
    assert {job.params.get("preserve_color") for job in jobs if job.method == "gatys"} == {None, "luminance"}
    assert sorted(job.method for job in jobs) == ["gatys", "gatys", "itn", "itn-train"]
    (training,) = [job for job in jobs if job.method == "itn-train"]
    assert (training.params["recipe"], training.params["steps"], training.params["crop"]) == ("demo", 2, 48)
    runs, artifacts = len(catalog_rows(app, Run)), len(catalog_rows(app, Artifact))

    second = app.cli("demo", *quick)
    assert "nothing left to do" in second.output and "catalog: demo jobs" in second.output
    assert (len(catalog_rows(app, Run)), len(catalog_rows(app, Artifact))) == (runs, artifacts)


def test_demo_with_data_uses_only_the_users_pictures(prefect_api, atelier, tmp_path):
    """Issue 14 item 13: the samples already in the catalog (tagged demo) are not crossed in."""
    from atelier.commands.demo import DEMO_TAG
    from db.models import Job

    app = atelier(f"sqlite:///{tmp_path / '.atelier' / 'catalog.db'}", f"file://{tmp_path / '.atelier' / 'artifacts'}")
    samples = write_gallery_inputs(tmp_path / "samples", contents=2, styles=2)
    app.cli("catalog", "add", str(tmp_path / "samples" / "content"), "--role", "content", "--tag", DEMO_TAG)
    app.cli("catalog", "add", str(tmp_path / "samples" / "style"), "--role", "style", "--tag", DEMO_TAG)
    write_gallery_inputs(tmp_path / "mine", contents=1, styles=1, side=64)  # 64 px: the fast network's smallest photo
    (tmp_path / "mine" / "content" / "astronaut.png").rename(tmp_path / "mine" / "content" / "me.png")
    from PIL import Image

    Image.open(tmp_path / "mine" / "content" / "me.png").rotate(90).save(tmp_path / "mine" / "content" / "me.png")
    Image.open(tmp_path / "mine" / "style" / "strokes-0.png").rotate(90).save(tmp_path / "mine" / "style" / "strokes-0.png")

    result = app.cli("demo", "--data", str(tmp_path / "mine"), "--size", "32", "--iterations", "1", "--itn-steps", "1")
    assert "1 contents x 1 styles = 1 jobs" in " ".join(result.output.split())
    jobs = catalog_rows(app, Job)
    assert sorted(job.method for job in jobs) == ["gatys", "gatys", "itn", "itn-train"] and len(samples) == 4
    assert len({job.content_id for job in jobs}) == 1  # every job, the fast network's too, is on the user's photo

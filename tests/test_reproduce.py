"""`atelier reproduce`: a recorded artwork made again on the CPU has the very same bytes.

Each test runs a real job through the task layer (tiny skimage photo, drawn style, few
evaluations), then reproduces its artwork with the real CLI and compares sha256s.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.fixtures.images import draw_strokes, skimage_image
from tests.fixtures.prefect import run_pending_job, tiny_gatys_job

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TINY_ITN = ["--arch", "light", "--steps", "2", "--param", "crop=32", "--param", "batch_size=2", "--param",
            "style_size=64", "--param", "checkpoint_every=2", "--param", "validate_every=2", "--param", "precision=fp32"]


@pytest.fixture
def gatys_artwork(atelier, tmp_path: Path) -> tuple[object, int]:
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    tiny_gatys_job(app, tmp_path, "iterations=6")
    return app, run_pending_job(app)


def _artwork_sha256(app, artwork_id: int) -> str:
    from db.queries import show_artwork

    with app.workshop().catalog.reader() as session:
        return show_artwork(session, artwork_id)["sha256"]


def test_gatys_on_the_cpu_gives_identical_bytes(gatys_artwork, tmp_path: Path) -> None:
    app, artwork_id = gatys_artwork
    out = tmp_path / "again.png"

    result = app.cli("reproduce", str(artwork_id), "-o", str(out))

    assert "identical bytes" in result.output and "differs:" not in result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == _artwork_sha256(app, artwork_id)


def test_other_parameters_are_not_identical(gatys_artwork, tmp_path: Path) -> None:
    """The comparison can fail: a run recorded with one evaluation fewer than it really spent."""
    from sqlalchemy import update

    from db.models import Run

    app, artwork_id = gatys_artwork
    catalog = app.workshop().catalog
    with catalog.session() as session:
        run = session.get(Run, 1)
        session.execute(update(Run).where(Run.id == run.id).values(params={**run.params, "iterations": 5}))

    result = app.cli("reproduce", str(artwork_id), expect=1)

    assert "different bytes" in result.output and "not reproducible" in result.output
    assert "losses.total: recorded" in result.output  # the metric differences are reported


def test_a_run_recorded_before_layer_balance_reproduces_unbalanced(gatys_artwork, tmp_path: Path) -> None:
    """Runs recorded before `balance_layers` existed lack the key: they ran the unbalanced objective,
    and reproducing them with today's default (balanced) would give other pixels."""
    from sqlalchemy import update

    from db.models import Run

    app, _ = gatys_artwork
    app.cli("jobs", "add", "--content", "photo", "--style", "strokes", "--method", "gatys",
            "--param", "size=48", "--param", "iterations=6", "--param", "balance_layers=false")
    artwork_id = run_pending_job(app)
    with app.workshop().catalog.session() as session:
        run = session.get(Run, 2)
        assert run.params["balance_layers"] is False
        before_balance = {key: value for key, value in run.params.items() if key != "balance_layers"}
        session.execute(update(Run).where(Run.id == run.id).values(params=before_balance))
    out = tmp_path / "again.png"

    result = app.cli("reproduce", str(artwork_id), "-o", str(out))

    assert "identical bytes" in result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == _artwork_sha256(app, artwork_id)


def test_a_tiled_render_is_made_again_in_its_recorded_tiles(atelier, tmp_path: Path, monkeypatch) -> None:
    """A render tiled for want of memory (here: its plan forced to 32 px tiles) reproduces on a
    machine where it fits whole: planned there, it would run whole and give other bytes."""
    import style_engine.gatys.render
    from style_engine.gatys.memory import forced_plan

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    tiny_gatys_job(app, tmp_path, "iterations=6", "multiscale=false")
    with monkeypatch.context() as patch:
        patch.setattr(style_engine.gatys.render, "plan_memory",
                      lambda params, content, *_: forced_plan(params, [content.size[::-1]], 32))
        artwork_id = run_pending_job(app)
    with app.workshop().catalog.reader() as session:
        from db.queries import show_artwork, show_run

        recorded = show_run(session, show_artwork(session, artwork_id)["run_id"])["metrics"]["tile_plan"]
    assert recorded["levels"] == [{"tile": 32, "halo": 64, "tiles": 4}]
    out = tmp_path / "again.png"

    result = app.cli("reproduce", str(artwork_id), "-o", str(out))

    assert "identical bytes" in result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == _artwork_sha256(app, artwork_id)


def test_version_and_weights_mismatches_are_named_before_the_run(gatys_artwork) -> None:
    from sqlalchemy import update

    from db.models import Run

    app, artwork_id = gatys_artwork
    with app.workshop().catalog.session() as session:
        run = session.get(Run, 1)
        versions = {**run.versions, "torch": "1.0.0", "weights_sha256": "ab" * 32}
        session.execute(update(Run).where(Run.id == run.id).values(versions=versions))

    result = app.cli("reproduce", str(artwork_id))  # with other versions a difference is reported, not an error

    output = result.output
    assert "differs: torch: recorded 1.0.0, here " in output
    assert f"differs: weights_sha256: recorded {'ab' * 32}, here " in output
    assert output.index("differs: torch") < output.index("identical bytes")


def test_unknown_artwork_and_missing_input_are_one_line_exit_2(gatys_artwork, tmp_path: Path) -> None:
    from db.queries import Filters, list_images

    app, artwork_id = gatys_artwork
    unknown = app.cli("reproduce", "424242", expect=2)
    assert unknown.output.strip() == "error: artwork 424242: no artwork with id 424242"

    workshop = app.workshop()
    with workshop.catalog.reader() as session:
        [content] = list_images(session, Filters(role="content"))
    workshop.store.path_for_uri(content["uri"]).unlink()
    shutil.rmtree(workshop.config.cache_dir)  # as on another machine: no local copy either

    missing = app.cli("reproduce", str(artwork_id), expect=2)
    error = missing.output.strip().splitlines()[-1]
    assert error.startswith(f"error: artwork {artwork_id}: a recorded input cannot be fetched") and content["sha256"][:12] in error


def test_itn_stylizing_with_a_stored_model_gives_identical_bytes(prefect_api, atelier, tmp_path: Path) -> None:
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("rocket", "chelsea", "coffee"):
        skimage_image(name, 100).save(photos / f"{name}.png")
    skimage_image("astronaut", 48).save(tmp_path / "photo.png")
    draw_strokes(64, 64).save(tmp_path / "strokes.png")
    app.cli("catalog", "add", str(tmp_path / "photo.png"), "--role", "content")
    app.cli("catalog", "add", str(tmp_path / "strokes.png"), "--role", "style")
    app.cli("models", "train", "--name", "tiny", "--style", "strokes.png", "--data", str(photos),
            "--preview", "photo.png", *TINY_ITN)
    app.cli("jobs", "add", "--content", "photo", "--style", "strokes", "--method", "itn",
            "--param", "model=tiny", "--param", "size=48")
    artwork_id = run_pending_job(app)
    out = tmp_path / "again.png"

    result = app.cli("reproduce", str(artwork_id), "-o", str(out))

    assert "identical bytes" in result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == _artwork_sha256(app, artwork_id)

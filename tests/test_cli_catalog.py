"""The catalog CLI end to end on tiny real images, on both databases, including every
user error: one line on stderr, exit code 2, nothing half-written."""

import json
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.settings import get_settings
from db.claims import claim_jobs
from db.runs import ArtifactRecord, complete_run, start_run
from db.migrate import alembic_config, head_revisions
from db.session import make_catalog, open_catalog

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(catalog_url, tmp_path, monkeypatch):
    """Run `atelier ...` in-process against a fresh catalog and a local store; returns a runner."""
    monkeypatch.setenv("ATELIER_DATABASE_URL", catalog_url)
    monkeypatch.setenv("ATELIER_STORE_URL", f"file://{tmp_path / 'store'}")
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    yield run
    get_settings.cache_clear()


@pytest.fixture
def pictures(tmp_path) -> Path:
    """content/{city,harbor}.png, styles/{waves,stars}.png and a corrupt styles/broken.png."""
    rng = np.random.default_rng(0)
    for folder, names in (("content", ("city", "harbor")), ("styles", ("waves", "stars"))):
        (tmp_path / folder).mkdir()
        for name in names:
            pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{name}.png")
    (tmp_path / "styles" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp_path


def _json(result):
    return json.loads(result.stdout)


def _error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_catalog_add_registers_dedupes_and_rejects(cli, pictures, tmp_path):
    added = _json(cli("catalog", "add", pictures / "content", "--role", "content", "--tag", "city", "--json"))
    assert [(Path(o["path"]).name, o["status"]) for o in added] == [("city.png", "added"), ("harbor.png", "added")]

    result = cli("catalog", "add", pictures / "styles", pictures / "content" / "city.png", "--role", "style",
                 "--artist", "Hokusai", "--tag", "Ukiyo-e", code=2)
    assert "broken.png" in result.stderr and "invalid" in result.stderr
    assert "duplicate" in result.stdout and "2 added, 1 duplicate, 1 invalid" in result.stdout

    images = _json(cli("catalog", "ls", "--json"))
    assert [(i["title"], i["role"]) for i in images] == [  # newest first
        ("waves", "style"), ("stars", "style"), ("harbor", "content"), ("city", "content")]
    stored = sorted(p.name for p in (tmp_path / "store").rglob("*.png"))
    assert stored == sorted(f"{i['sha256']}.png" for i in images)  # nothing stored for the broken file
    assert [i["title"] for i in _json(cli("catalog", "ls", "--tag", "ukiyo-e", "--artist", "hoku", "--json"))] == [
        "waves", "stars"]
    shown = _json(cli("catalog", "show", "city", "--json"))
    assert shown["tags"] == ["city"] and shown["width"] == 56 and shown["format"] == "PNG"


def test_catalog_add_restores_a_corrupted_original(cli, pictures, tmp_path):
    image = _json(cli("catalog", "add", pictures / "content" / "city.png", "--role", "content", "--json"))[0]
    (stored,) = (tmp_path / "store").rglob("*.png")
    stored.write_bytes(b"bit rot")
    again = _json(cli("catalog", "add", pictures / "content" / "city.png", "--role", "content", "--json"))[0]
    assert (again["status"], again["image_id"]) == ("restored", image["image_id"])
    assert stored.read_bytes() == (pictures / "content" / "city.png").read_bytes()
    stored.unlink()
    assert _json(cli("catalog", "add", pictures / "content" / "city.png", "--role", "content", "--json"))[0][
        "status"] == "restored"
    assert _json(cli("catalog", "add", pictures / "content" / "city.png", "--role", "content", "--json"))[0][
        "status"] == "duplicate"


def test_catalog_add_as_video_of_a_picture_names_the_real_problem(cli, pictures):
    """Issue 21: a file that is not a video, given --role video, is not told to use --role video; a
    picture already registered as content and renamed .mp4 is refused as not a video, not a duplicate."""
    fake = pictures / "notes.mp4"
    fake.write_text("not a clip")
    refused = cli("catalog", "add", fake, "--role", "video", code=2)
    assert "notes.mp4: not a readable video" in _error_line(refused)
    assert "--role video" not in refused.stderr

    image = _json(cli("catalog", "add", pictures / "content" / "city.png", "--role", "content", "--json"))[0]
    renamed = pictures / "city.mp4"
    renamed.write_bytes((pictures / "content" / "city.png").read_bytes())
    clash = cli("catalog", "add", renamed, "--role", "video", code=2)
    assert _error_line(clash) == (f"invalid: {renamed}: already in the catalog as content image {image['image_id']}, "
                                  "and it is not a video (it is a picture)")
    assert "duplicate" not in clash.stdout


@pytest.fixture
def gallery(cli, pictures):
    cli("catalog", "add", pictures / "content", "--role", "content", "--tag", "photo")
    cli("catalog", "add", pictures / "styles" / "waves.png", pictures / "styles" / "stars.png", "--role", "style",
        "--tag", "paint", "--artist", "Hokusai")
    return cli


def test_jobs_add_and_matrix_are_idempotent(gallery):
    cli = gallery
    first = _json(cli("jobs", "add", "--content", "city", "--style", "waves", "--style", "stars",
                      "--style-weight", "0.8", "--style-weight", "0.2", "--method", "noop",
                      "--param", "size=64", "--priority", "3", "--json"))
    assert first["created"]
    again = _json(cli("jobs", "add", "--content", "city.png", "--style", "waves", "--style", "stars",
                      "--style-weight", "0.8", "--style-weight", "0.2", "--method", "noop", "--param", "size=64",
                      "--json"))
    assert again == {"id": first["id"], "created": False}

    matrix = ["jobs", "matrix", "--contents", "tag:photo", "--styles", "tag:paint", "--method", "noop",
              "--param", "size=64"]
    assert "4 jobs: 4 new, 0 already existed" in cli(*matrix).stdout
    assert "4 jobs: 0 new, 4 already existed" in cli(*matrix).stdout

    jobs = _json(cli("jobs", "ls", "--json"))
    assert len(jobs) == 5 and {j["status"] for j in jobs} == {"pending"}
    assert jobs[-1]["params"] == {"size": 64}  # canonical: validated by the engine's parameter types
    assert [s["weight"] for s in jobs[-1]["styles"]] == [0.8, 0.2]  # newest first: the first job is last
    assert len(_json(cli("jobs", "ls", "--style", "stars", "--content", "harbor", "--json"))) == 1
    assert [j["id"] for j in _json(cli("jobs", "ls", "--sort", "-priority", "--limit", "1", "--json"))] == [
        first["id"]]
    assert _json(cli("jobs", "show", first["id"], "--json"))["runs"] == []
    assert "pending" in cli("jobs", "ls").stdout

    cancelled = cli("jobs", "cancel", first["id"]).stdout
    assert f"cancelled: {first['id']}" in cancelled
    assert [j["status"] for j in _json(cli("jobs", "ls", "--status", "cancelled", "--json"))] == ["cancelled"]
    assert _json(cli("jobs", "cancel", "--undo", first["id"], "--json")) == {str(first["id"]): "pending"}


def test_runs_and_artworks_commands_show_recorded_work(gallery, catalog_url):
    cli = gallery
    job_id = _json(cli("jobs", "add", "--content", "city", "--style", "waves", "--method", "noop", "--json"))["id"]
    catalog = open_catalog(catalog_url)
    claim_jobs(catalog, 1, "w", 60)
    run_id = start_run(catalog, job_id, "w", device="cpu")
    complete_run(catalog, run_id, "w", metrics={"ssim_to_content": 0.7}, artifacts=[
        ArtifactRecord("output", "file:///out/a.png", "c" * 64, 10, "image/png", 56, 40)])
    catalog.dispose()

    runs = _json(cli("runs", "ls", "--status", "succeeded", "--json"))
    assert [(r["id"], r["job_id"], r["device"]) for r in runs] == [(run_id, job_id, "cpu")]
    assert _json(cli("runs", "show", run_id, "--json"))["artifacts"][0]["uri"] == "file:///out/a.png"
    assert _json(cli("runs", "stats", "--json"))[0]["runs"] == 1
    (artwork,) = _json(cli("artworks", "ls", "--style", "waves", "--json"))
    assert (artwork["job_id"], artwork["method"], artwork["styles"][0]["title"]) == (job_id, "noop", "waves")
    assert _json(cli("artworks", "ls", "--best", "ssim_to_content", "--json"))[0]["id"] == artwork["id"]
    assert _json(cli("artworks", "show", artwork["id"], "--json"))["run_id"] == run_id
    assert _json(cli("artworks", "ls", "--method", "gatys", "--json")) == []
    assert "waves" in cli("artworks", "ls").stdout


USER_ERRORS = [
    (["jobs", "add", "--content", "999", "--style", "waves", "--method", "noop"], "no image matches '999'"),
    (["jobs", "add", "--content", "city", "--style", "nope", "--method", "noop"], "no image matches 'nope'"),
    (["jobs", "add", "--content", "waves", "--style", "stars", "--method", "noop"], "cannot be the content"),
    (["jobs", "add", "--content", "city", "--style", "waves", "--method", "noop", "--param", "sise=64"], "sise"),
    (["jobs", "add", "--content", "city", "--style", "waves", "--method", "noop", "--param", "size=-3"], "size"),
    (["jobs", "add", "--content", "city", "--style", "waves", "--method", "noop", "--param", "size"],
     "expected key=value"),
    (["jobs", "add", "--content", "city", "--style", "waves", "--method", "warhol"], "unknown"),
    (["jobs", "add", "--content", "city", "--style", "waves", "--style-weight", "1", "--style-weight", "2",
      "--method", "noop"], "2 style weights given for 1 styles"),
    (["jobs", "matrix", "--contents", "tag:nothing", "--styles", "tag:paint", "--method", "noop"],
     "no content images are tagged 'nothing'"),
    (["jobs", "show", "404"], "no job with id 404"),
    (["jobs", "cancel", "404"], "no job with id 404; nothing was changed"),
    (["runs", "show", "404"], "no run with id 404"),
    (["artworks", "show", "404"], "no artwork with id 404"),
    (["catalog", "show", "nope"], "no image matches 'nope'"),
    (["jobs", "ls", "--since", "yesterday"], "--since 'yesterday'"),
    (["jobs", "ls", "--sort", "colour"], "cannot sort by 'colour'"),
    (["catalog", "ls", "--limit", "0"], "--limit 0"),
    (["catalog", "add", "missing.png", "--role", "content"], "missing.png: no such file or folder"),
    (["catalog", "add", "PICTURES/content", "--role", "content", "--title", "One"], "--title names one image"),
    (["catalog", "add", "PICTURES/content", "--role", "portrait"], "--role 'portrait'"),
    (["catalog", "add", "PICTURES/content", "--role", "content", "--tag", " "], "invalid tag"),
]


def test_user_errors_are_one_line_with_exit_code_2_and_write_nothing(gallery, pictures):
    """All cases share one catalog (setting one up per case would dominate the suite's time)."""
    def state():
        return gallery("jobs", "ls", "--json").stdout, gallery("catalog", "ls", "--json").stdout

    before = state()
    for args, message in USER_ERRORS:
        result = gallery(*[a.replace("PICTURES", str(pictures)) for a in args], code=2)
        assert message in _error_line(result), args
    assert state() == before


def test_an_unreachable_database_is_one_line_without_the_password(monkeypatch):
    monkeypatch.setenv("ATELIER_DATABASE_URL", "postgresql+psycopg://atelier:s3cret@127.0.0.1:1/catalog")
    get_settings.cache_clear()
    try:
        for args in (["catalog", "ls"], ["jobs", "add", "--content", "1", "--style", "2", "--method", "noop"],
                     ["db", "upgrade"]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2
            line = _error_line(result)
            assert "cannot reach the catalog database" in line and "127.0.0.1:1" in line
            assert "s3cret" not in result.stderr + result.stdout
    finally:
        get_settings.cache_clear()


def test_a_catalog_behind_its_migrations_asks_for_db_upgrade(cli, catalog_url):
    catalog = make_catalog(catalog_url)
    command.downgrade(alembic_config(catalog), "base")  # leaves an empty alembic_version table
    catalog.dispose()
    assert "run `atelier db upgrade`" in _error_line(cli("catalog", "ls", code=2))
    assert "run `atelier db upgrade`" in _error_line(cli("db", "status", code=2))
    [head] = head_revisions()
    assert f"upgraded from (empty) to {head}" in cli("db", "upgrade").stdout
    assert f"already at {head}" in cli("db", "upgrade").stdout
    assert cli("catalog", "ls", "--json").stdout.strip() == "[]"

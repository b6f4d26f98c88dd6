"""The service layer under the CLI (atelier/services, the generated options): its rules hold
whichever door a request comes through."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from atelier.cli import app
from atelier.commands.method_options import OPTION_HELP, param_fields
from atelier.services.errors import BadInput
from atelier.services.image_ingest import ImageRequest, plan_images
from atelier.services.job_requests import canonical_params
from tests.test_cli_catalog import _error_line, _json, cli, gallery, pictures  # noqa: F401  (fixtures)


@pytest.mark.unit
def test_generated_options_carry_the_dataclass_defaults():
    """The options are read from the dataclass's source (no torch at start-up); they must say
    what the imported dataclass says."""
    from style_engine.params import GatysParams

    declared = {f.name: f.default for f in dataclasses.fields(GatysParams)}
    generated = {f.name: f.default for f in param_fields()}
    assert generated and all(declared[name] == default for name, default in generated.items())
    assert set(OPTION_HELP) <= set(generated)  # every described parameter became an option


@pytest.mark.unit
def test_stylize_and_jobs_add_take_the_same_parameter_options():
    command = typer.main.get_command(app)

    def options(*path: str) -> set[str]:
        node = command
        for name in path:
            node = node.commands[name]
        return {decl for param in node.params for decl in param.opts}

    wanted = {f"--{name.replace('_', '-')}" for name in OPTION_HELP}
    assert wanted <= options("stylize") and wanted <= options("jobs", "matrix")
    assert wanted - {"--style-weight"} <= options("jobs", "add")  # there --style-weight is the blend, as before
    shared = {"--tag", "--artist", "--title", "--since", "--until", "--sort", "--limit", "--json"}
    listings = [("catalog", "ls"), ("jobs", "ls"), ("runs", "ls"), ("artworks", "ls")]
    assert all(shared <= options(*path) for path in listings)
    work = {"--method", "--content", "--style"}
    assert all(work <= options(*path) for path in listings[1:])


@pytest.mark.unit
def test_canonical_params_make_two_spellings_one_request():
    spelled_out = canonical_params("gatys", {"size": 64, "iterations": 300, "content_weight": 1, "seed": 0})
    short = canonical_params("gatys", {"size": 64, "content_weight": 1.0})
    assert spelled_out == short and short["content_weight"] == 1.0
    assert canonical_params("gatys", {"size": 64}) != short  # a real difference stays one
    with pytest.raises(BadInput, match="init=image"):
        canonical_params("gatys", {"init": "image"})


@pytest.mark.unit
def test_an_ingest_plan_refuses_bad_requests_before_anything_is_stored(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    plan = plan_images([tmp_path], ImageRequest(role="style", tags=("Paint", "paint ")))
    assert [p.name for p in plan.files] == ["a.png", "b.png"] and plan.tags == ["paint"]
    assert sorted((o.path.rsplit("/", 1)[1], o.status) for o in plan.skipped) == [
        (".hidden.png", "skipped"), ("notes.txt", "skipped")]
    for paths, request, message in [
        ([tmp_path / "missing.png"], ImageRequest(role="content"), "missing.png: no such file or folder"),
        ([tmp_path], ImageRequest(role="content", title="One"), "--title names one image, but 2 files"),
        ([tmp_path], ImageRequest(role="portrait"), "--role 'portrait'"),
        ([tmp_path / "notes.txt", tmp_path / "a.png"], ImageRequest(role="video"), None),
    ]:
        if message is None:  # files named explicitly are always tried, whatever their suffix
            assert len(plan_images(paths, request).files) == 2
            continue
        with pytest.raises(BadInput, match=message):
            plan_images(paths, request)


@pytest.mark.e2e
def test_jobs_add_options_and_params_name_the_same_job(gallery):
    """`--size 64` and `--param size=64`, a default given or left out: one job, not three."""
    base = ["jobs", "add", "--content", "city", "--style", "waves", "--method", "gatys", "--json"]
    first = _json(gallery(*base, "--size", "64", "--content-weight", "1"))
    assert first["created"]
    assert _json(gallery(*base, "--param", "size=64", "--param", "content_weight=1.0")) == {
        "id": first["id"], "created": False}
    assert _json(gallery(*base, "--size", "64", "--iterations", "300", "--param", "content_weight=1")) == {
        "id": first["id"], "created": False}
    twice = gallery(*base, "--size", "64", "--param", "size=64", code=2)
    assert "--size is given twice" in _error_line(twice)
    noop = gallery("jobs", "add", "--content", "city", "--style", "waves", "--method", "noop", "--iterations", "5",
                   code=2)
    assert "unknown key(s) iterations" in _error_line(noop)


@pytest.mark.unit
def test_every_png_writer_records_provenance_under_the_same_keys(tmp_path):
    """A gallery job's output and `atelier stylize`'s carry one set of keys (tasks.provenance),
    and the parameters come back as the dict that made the picture."""
    import json

    from PIL import Image

    from style_engine.images import save_png
    from tasks.provenance import png_provenance

    params = {"size": 64, "seed": 3, "preserve_color": None}
    job = png_provenance("gatys", params, content="ab" * 32, styles=["cd" * 32], job="7")
    cli = png_provenance("gatys", params, content="photo.png", styles=["waves.png"], device="cpu")
    assert set(job) - {"atelier:job"} == set(cli) - {"atelier:device"}
    save_png(Image.new("RGB", (8, 8)), tmp_path / "out.png", job)
    text = Image.open(tmp_path / "out.png").text
    assert json.loads(text["atelier:params"]) == params and text["atelier:seed"] == "3"
    assert json.loads(text["atelier:styles"]) == ["cd" * 32] and text["Software"].startswith("atelier ")


@pytest.mark.integration
def test_add_one_job_makes_two_spellings_one_job_without_the_cli(catalog):
    """The services take an open catalog and typed requests: the web app's door, no Typer."""
    from atelier.services.job_requests import JobRequest, add_job_matrix, add_one_job
    from db.images import register_image

    with catalog.session() as session:
        for role, sha in (("content", "a" * 64), ("style", "b" * 64)):
            register_image(session, sha256=sha, role=role, uri=f"file:///{sha}.png", width=8, height=8, format="PNG",
                           bytes=1, title=role, tags=["set"])
    with catalog.session() as session:
        first = add_one_job(session, "content", ["style"], JobRequest("gatys", {"size": 64, "content_weight": 1}))
    with catalog.session() as session:
        again = add_one_job(session, "content", ["style"],
                            JobRequest("gatys", {"size": 64, "content_weight": 1.0, "iterations": 300, "seed": 0}))
        matrix = add_job_matrix(session, ["tag:set"], ["tag:set"], JobRequest("gatys", {"size": 64, "content_weight": 1}))
    assert first.created and (again.job_id, again.created) == (first.job_id, False)
    assert (matrix.job_ids, matrix.new, matrix.existing) == ([first.job_id], 0, 1)
    with catalog.session() as session, pytest.raises(BadInput, match="no content images are tagged 'none'"):
        add_job_matrix(session, ["tag:none"], ["tag:set"], JobRequest("gatys", {}))

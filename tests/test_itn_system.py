"""Fast style networks through the whole system: the CLI, the catalog job, the Prefect flow, the store.

One tiny training (light network, 32 px crops, 4 steps) per scenario, on the real Prefect harness.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.fixtures.images import draw_strokes, skimage_image
from tests.fixtures.prefect import catalog_rows

pytestmark = pytest.mark.integration

TINY = ["--arch", "light", "--steps", "4", "--param", "crop=32", "--param", "batch_size=2", "--param", "style_size=64",
        "--param", "checkpoint_every=2", "--param", "validate_every=2", "--param", "precision=fp32"]


@pytest.fixture
def app(prefect_api, atelier, tmp_path: Path):
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    (tmp_path / "content").mkdir()
    for name in ("astronaut", "coffee"):
        skimage_image(name, 64).save(tmp_path / "content" / f"{name}.png")
    (tmp_path / "style").mkdir()
    draw_strokes(64, 64).save(tmp_path / "style" / "strokes.png")
    app.cli("catalog", "add", str(tmp_path / "content"), "--role", "content")
    app.cli("catalog", "add", str(tmp_path / "style"), "--role", "style")
    return app


def _fill(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name in ("rocket", "chelsea", "coffee"):
        skimage_image(name, 100).save(folder / f"{name}.png")
    return folder


def _train(app, name: str, data: Path, *extra: str, expect: int = 0):
    return app.cli("models", "train", "--name", name, "--style", "strokes.png", "--data", str(data),
                   "--preview", "astronaut.png", *TINY, *extra, expect=expect)


def _weights(app, name: str) -> dict[str, torch.Tensor]:
    info = json.loads(app.cli("models", "show", name, "--json").output)
    data = app.workshop().store.get_bytes(info["uri"], sha256=info["sha256"])
    import io

    return torch.load(io.BytesIO(data), weights_only=True)["model"]


def test_a_folder_without_a_usable_photo_is_refused_before_any_job_then_training_records_the_model(
    app, tmp_path: Path
) -> None:
    """Issue 21: the data is checked before the job exists; it used to be a job that ran, failed,
    printed Prefect's traceback and stayed behind as a failed itn-train job."""
    from db.models import Artifact, Job, Model
    from style_engine.vgg import CAFFE_SHA256

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.txt").write_text("not a photo")
    skimage_image("rocket", 32).save(photos / "tiny.png")  # a photo, too small to train on
    failed = _train(app, "tiny", photos, expect=2)
    assert f"training data '{photos.resolve()}': no usable image" in failed.output
    assert "Traceback" not in failed.output
    assert catalog_rows(app, Job) == []

    (photos / "tiny.png").unlink()
    done = _train(app, "tiny", _fill(photos))
    assert "model 1 'tiny' (cpu recipe, batch_size, crop, steps, style_size changed): 4 steps" in " ".join(done.output.split())
    (job,) = catalog_rows(app, Job)
    assert job.status == "succeeded" and job.method == "itn-train"
    (model,) = catalog_rows(app, Model)
    metrics = model.metrics
    assert model.name == "tiny" and model.method == "itn" and model.params["arch"] == "light"
    assert model.params["data"] == str(photos.resolve()) and model.params["steps"] == 4
    # Issue 22: on this CPU the CPU recipe fills what the options leave out, and the row says so.
    assert model.params["recipe"] == "cpu" and model.params["style_weight"] == 7e5 and model.params["balance_layers"] and model.params["learning_rate"] == 1e-3
    shown = app.cli("models", "show", "tiny").output
    assert "recipe" in shown and "cpu recipe, batch_size, crop, steps, style_size changed" in " ".join(shown.split())
    assert metrics["steps"] == 4 and metrics["resumed_from_step"] == 0
    assert metrics["dataset"]["photos"] == 2 and metrics["dataset"]["validation"] == 1
    assert len(metrics["dataset"]["sha256"]) == 64
    assert metrics["vgg_weights_sha256"] == CAFFE_SHA256 and metrics["device"] == "cpu"
    assert metrics["wall_seconds"] > 0 and "torch" in metrics["versions"]
    assert set(metrics["losses"]) == {"total", "content", "style", "tv"} and metrics["validation_losses"]["total"] > 0
    assert [s["weight"] for s in metrics["styles"]] == [1.0] and model.style_id == metrics["styles"][0]["id"]
    kinds = sorted(a.kind for a in catalog_rows(app, Artifact) if a.job_id == job.id)
    assert kinds == ["checkpoint", "checkpoint", "model", "output", "thumbnail"]

    listed = json.loads(app.cli("models", "ls", "--json").output)
    assert [m["name"] for m in listed] == ["tiny"]
    again = _train(app, "tiny", photos, expect=2)
    assert "model name 'tiny' is taken" in again.output


def test_a_killed_training_resumes_from_its_checkpoint_and_ends_identical(app, tmp_path: Path) -> None:
    from tasks.itn import progress_listeners

    photos = _fill(tmp_path / "photos")
    _train(app, "whole", photos)

    def crash_at_step_3(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 3:
            raise RuntimeError("worker killed at step 3")

    progress_listeners.append(crash_at_step_3)
    try:
        crashed = _train(app, "resumed", photos, expect=2)
    finally:
        progress_listeners.remove(crash_at_step_3)
    assert "worker killed at step 3" in crashed.output
    _train(app, "resumed", photos)
    shown = json.loads(app.cli("models", "show", "resumed", "--json").output)
    assert shown["metrics"]["resumed_from_step"] == 2
    whole, resumed = _weights(app, "whole"), _weights(app, "resumed")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_stylize_with_a_model_and_gallery_jobs_use_it_by_name(app, tmp_path: Path) -> None:
    from db.models import Job

    _train(app, "tiny", _fill(tmp_path / "photos"))
    out = tmp_path / "out"
    app.cli("stylize", str(tmp_path / "content"), "--method", "itn", "--model", "tiny", "--size", "0", "-o", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png", "coffee.png"]
    assert Image.open(out / "coffee.png").size == Image.open(tmp_path / "content" / "coffee.png").size

    app.cli("jobs", "add", "--content", "coffee.png", "--style", "strokes.png", "--method", "itn", "--param", "model=tiny")
    app.cli("jobs", "add", "--content", "coffee.png", "--style", "strokes.png", "--method", "itn", "--param", "model=nope")
    ran = app.cli("gallery", "run", "--method", "itn", expect=1)
    assert "1 of 2 jobs succeeded" in ran.output
    jobs = {job.params["model"]: job for job in catalog_rows(app, Job) if job.method == "itn"}
    assert jobs["tiny"].status == "succeeded"
    assert jobs["nope"].status == "failed" and "model 'nope'" in jobs["nope"].last_error_message
    assert sum(job.method == "itn-train" for job in catalog_rows(app, Job)) == 1  # nothing retrained

    _train(app, "nope", tmp_path / "photos")  # the fix: a model of that name now exists
    rerun = app.cli("jobs", "rerun-failed", "--method", "itn")
    assert "1 of 1 jobs succeeded" in rerun.output


def test_bad_models_are_refused_in_one_line(app, tmp_path: Path) -> None:
    from db.models import Model

    _train(app, "tiny", _fill(tmp_path / "photos"))
    photo = str(tmp_path / "content" / "coffee.png")
    unknown = app.cli("stylize", photo, "--method", "itn", "--model", "nope", "-o", str(tmp_path / "x.png"), expect=2)
    assert "model 'nope': no trained model" in unknown.output

    (model,) = catalog_rows(app, Model)
    info = json.loads(app.cli("models", "show", "tiny", "--json").output)
    stored = app.workshop().store.path_for_uri(info["uri"])
    good = stored.read_bytes()
    stored.chmod(0o644)
    stored.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    tampered = app.cli("stylize", photo, "--method", "itn", "--model", "tiny", "-o", str(tmp_path / "x.png"), expect=2)
    assert "model 'tiny'" in tampered.output and "sha256" in tampered.output
    stored.write_bytes(good)
    app.cli("stylize", photo, "--method", "itn", "--model", "tiny", "-o", str(tmp_path / "x.png"))

    import io

    from db.runs import ArtifactRecord
    from db.trained_models import record_model
    from style_engine.itn.network import build_network

    buffer = io.BytesIO()
    torch.save({"arch": "johnson", "model": build_network("light", 0).state_dict()}, buffer)
    put = app.workshop().store.put_bytes(buffer.getvalue(), suffix=".pt")
    record_model(app.workshop().catalog, name="mislabelled", method="itn", style_id=model.style_id, run_id=model.run_id,
                 job_id=1, weights=ArtifactRecord("model", put.uri, put.sha256, put.size, "application/octet-stream"),
                 params={}, metrics={})
    wrong = app.cli("stylize", photo, "--method", "itn", "--model", "mislabelled", "-o", str(tmp_path / "x.png"), expect=2)
    assert "do not fit the 'johnson' architecture" in wrong.output

    exported = tmp_path / "tiny.onnx"
    app.cli("models", "export", "tiny", "-o", str(exported), "--format", "onnx")
    assert exported.stat().st_size > 10_000


def test_nan_loss_fails_the_training_job_with_its_reason(app, tmp_path: Path) -> None:
    from db.models import Job

    failed = _train(app, "overflow", _fill(tmp_path / "photos"), "--param", "style_weight=1e39", expect=2)
    assert "training diverged at step 1" in failed.output
    (job,) = catalog_rows(app, Job)
    assert job.status == "failed" and job.last_error_type == "TrainingDivergedError"

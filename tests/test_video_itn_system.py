"""Fast video through the whole system: a network trained on frames of a catalog video, then
`stylize-video --method itn` and video_itn jobs in the nightly gallery, with their bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.prefect import catalog_rows
from tests.video_clips import panning_frames, texture, write_clip

pytestmark = pytest.mark.e2e

TINY = ["--arch", "light", "--steps", "2", "--param", "crop=32", "--param", "batch_size=2", "--param", "style_size=64",
        "--param", "checkpoint_every=2", "--param", "validate_every=2", "--param", "precision=fp32"]


@pytest.fixture
def app(prefect_api, atelier, tmp_path: Path):
    """A catalog with a 6-frame clip (tag clips, 96x72: frames big enough to train on), two styles, a photo."""
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "pan.mp4", panning_frames(6, height=72, width=96), fps=10)
    Image.fromarray(texture(64, 64, seed=5)).save(folder / "strokes.png")
    Image.fromarray(texture(64, 64, seed=9)).save(folder / "other.png")
    Image.fromarray(texture(64, 64, seed=2)).save(folder / "photo.png")
    app.cli("catalog", "add", str(folder / "pan.mp4"), "--role", "video", "--tag", "clips")
    app.cli("catalog", "add", str(folder / "strokes.png"), str(folder / "other.png"), "--role", "style")
    app.cli("catalog", "add", str(folder / "photo.png"), "--role", "content")
    return app


def test_a_model_trained_on_video_frames_stylizes_clips_from_the_cli_and_from_gallery_jobs(app, tmp_path: Path) -> None:
    from db.models import Job, Model, Run
    from tasks.video_io import probe_video

    app.cli("models", "train", "--name", "tiny", "--style", "strokes.png", "--data", "video:tag:clips",
            "--preview", "photo.png", *TINY)
    (model,) = catalog_rows(app, Model)
    assert model.params["data"] == "video:tag:clips"
    assert model.metrics["dataset"]["photos"] + model.metrics["dataset"]["validation"] == 6  # every frame of a short clip

    clip, out = tmp_path / "in" / "pan.mp4", tmp_path / "out.mp4"
    steady = app.cli("stylize-video", str(clip), str(out), "--method", "itn", "--model", "tiny", "--size", "48",
                     "--style", str(tmp_path / "in" / "strokes.png"))
    assert "6 frames at 10 fps" in steady.output and "warping_error=" in steady.output
    info = probe_video(out)
    assert (info.frames, info.fps, info.width, info.height) == (6, 10.0, 48, 36)
    alone = app.cli("stylize-video", str(clip), str(out), "--method", "itn", "--model", "tiny", "--size", "48",
                    "--no-stabilize")
    assert "6 frames" in alone.output

    for args, message in (
        (["--model", "nope"], "model 'nope': no trained model has that name or id"),
        ([], "--method itn needs --model"),
        (["--model", "tiny", "--style", str(tmp_path / "in" / "other.png")], "was trained on another style"),
        (["--model", "tiny", "--iterations", "5"], "--iterations: not used by --method itn"),
    ):
        refused = app.cli("stylize-video", str(clip), str(out), "--method", "itn", *args, expect=2)
        assert message in refused.output and len(refused.output.strip().splitlines()) == 1

    app.cli("jobs", "matrix", "--contents", "tag:clips", "--styles", "strokes.png", "--method", "video_itn",
            "--param", "model=tiny", "--param", "size=48")
    app.cli("jobs", "add", "--content", "pan", "--style", "strokes.png", "--method", "video_itn",
            "--param", "model=nope", "--param", "size=48")
    ran = app.cli("gallery", "run", "--method", "video_itn", expect=1)
    assert "1 of 2 jobs succeeded" in ran.output
    jobs = {job.params["model"]: job for job in catalog_rows(app, Job) if job.method == "video_itn"}
    assert (jobs["nope"].status, jobs["nope"].last_error_type, jobs["nope"].attempts) == ("failed", "InvalidInputError", 1)
    assert "model 'nope'" in jobs["nope"].last_error_message
    assert jobs["tiny"].status == "succeeded"
    (run,) = [r for r in catalog_rows(app, Run) if r.job_id == jobs["tiny"].id]
    metrics = run.metrics
    assert metrics["frames"] == 6 and metrics["warping_error"] > 0 and metrics["seconds_per_frame"] > 0
    assert (metrics["blend"], metrics["model_id"], metrics["model_name"]) == (0.5, model.id, "tiny")
    assert metrics["flow_settings"]["method"] == "dis" and "style_dist" not in metrics  # no loss to report
    assert (run.params["model"], run.params["stabilize"], run.params["blend"]) == ("tiny", True, 0.5)
    assert sum(job.method == "itn-train" for job in catalog_rows(app, Job)) == 1  # nothing retrained


def test_video_training_frames_are_drawn_by_the_seed() -> None:
    from tasks.itn_data import FRAMES_PER_VIDEO, sample_frame_indices

    sha = "ab" * 32
    first = sample_frame_indices(250, sha, seed=0)
    assert np.array_equal(first, sample_frame_indices(250, sha, seed=0))
    assert not np.array_equal(first, sample_frame_indices(250, sha, seed=1))
    assert not np.array_equal(first, sample_frame_indices(250, "cd" * 32, seed=0))  # clips get independent draws
    assert len(set(first.tolist())) == FRAMES_PER_VIDEO and list(first) == sorted(first) and first.max() < 250
    assert sample_frame_indices(6, sha, seed=3).tolist() == [0, 1, 2, 3, 4, 5]


def test_video_training_data_loads_the_same_frames_for_the_same_seed(app) -> None:
    from style_engine.errors import InvalidInputError
    from tasks.itn_data import load_training_photos

    workshop = app.workshop()
    one = load_training_photos(workshop, "video:pan", seed=4)
    again = load_training_photos(workshop, "video:tag:clips", seed=4)
    assert len(one) == 6 and [np.asarray(a).tobytes() for a in one] == [np.asarray(b).tobytes() for b in again]
    assert one[0].size == (96, 72)
    with pytest.raises(InvalidInputError, match="no catalog video has tag 'nothing'"):
        load_training_photos(workshop, "video:tag:nothing")
    with pytest.raises(InvalidInputError, match="training data 'video:zzz'"):
        load_training_photos(workshop, "video:zzz")

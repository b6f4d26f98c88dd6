"""Videos through the whole system: catalog add, jobs, the stylize-video flow, checkpoints and resume, the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.prefect import catalog_rows
from tests.video_clips import corrupt_clip, panning_frames, texture, write_clip

pytestmark = pytest.mark.e2e

JOB_PARAMS = ("size=48", "iterations=4", "frame_iterations=3", "precision=fp32")


def inputs(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    clip = write_clip(folder / "pan.mp4", panning_frames(4), fps=10, audio=True)
    style = folder / "strokes.png"
    Image.fromarray(texture(64, 64, seed=5)).save(style)
    return clip, style


def add_video_job(app, clip: Path, style: Path) -> None:
    app.cli("catalog", "add", str(clip), "--role", "video", "--tag", "clips")
    app.cli("catalog", "add", str(style), "--role", "style")
    params = [arg for param in JOB_PARAMS for arg in ("--param", param)]
    app.cli("jobs", "matrix", "--contents", "tag:clips", "--styles", "strokes", "--method", "video_gatys", *params)


def test_catalog_registers_videos_and_refuses_bad_ones(atelier, catalog_url, tmp_path):
    from db.models import Image as ImageRow

    app = atelier(catalog_url, f"file://{tmp_path / 'store'}")
    clip, style = inputs(tmp_path / "in")
    added = app.cli("catalog", "add", str(clip), "--role", "video")
    assert "4 frames at 10 fps" in added.output
    assert "duplicate" in app.cli("catalog", "add", str(clip), "--role", "video").output
    [video] = catalog_rows(app, ImageRow)
    assert (video.role, video.width, video.height, video.frames, video.fps) == ("video", 64, 48, 4, 10.0)
    assert video.duration_s == pytest.approx(0.4)
    assert app.workshop().store.verify(video.uri, video.sha256, deep=True)

    garbled = corrupt_clip(clip, tmp_path / "in" / "garbled.mp4")
    refused = app.cli("catalog", "add", str(garbled), "--role", "video", expect=2)
    assert f"{garbled}: cannot decode" in refused.output
    other = write_clip(tmp_path / "in" / "other.mp4", panning_frames(3, seed=4))
    as_content = app.cli("catalog", "add", str(other), "--role", "content", expect=2)
    assert "--role video" in as_content.output
    assert len(catalog_rows(app, ImageRow)) == 1


def test_video_job_runs_once_per_video_records_its_run_and_resumes_after_a_crash(
    prefect_api, atelier, tmp_path, monkeypatch
):
    import av

    import tasks.video_job
    from db.models import Artifact, Job, Run
    from flows.video import stylize_video
    from style_engine.errors import TransientError
    from style_engine.params import parse_params
    from style_engine.video.ruder import ruder_gatys
    from tasks.video_io import probe_video, read_frames

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    clip, style = inputs(tmp_path / "in")
    add_video_job(app, clip, style)

    # The first attempt dies after two finished frames; the retry must start at frame 2.
    original = tasks.video_job.save_checkpoint
    saved: list[int] = []

    def crash_after_two(*args, **kwargs):
        original(*args, **kwargs)
        saved.append(1)
        if len(saved) == 2:
            raise TransientError("simulated crash after frame 1")

    monkeypatch.setattr(tasks.video_job, "save_checkpoint", crash_after_two)
    assert stylize_video(return_state=True).is_completed()

    [job] = catalog_rows(app, Job)
    assert job.status == "succeeded"
    crashed, finished = catalog_rows(app, Run)
    assert (crashed.status, crashed.error_type) == ("failed", "TransientError")
    assert finished.status == "succeeded"
    metrics = finished.metrics
    assert (metrics["frames"], metrics["frames_resumed"], metrics["flow_method"]) == (4, 2, "dis")
    assert metrics["flow_settings"]["preset"] == "DIS MEDIUM" and metrics["temporal_weight"] == 1e7
    assert metrics["warping_error"] > 0 and metrics["seconds_per_frame"] > 0 and metrics["style_dist"] > 0
    assert finished.params["temporal_weight"] is None and finished.params["long_term"] == [1, 2, 4]
    assert len(saved) == 4  # 2 frames, the crash, then only the 2 missing ones

    artifacts = catalog_rows(app, Artifact)
    checkpoints = sorted((a for a in artifacts if a.kind == "checkpoint"), key=lambda a: a.frames)
    assert [a.frames for a in checkpoints] == [1, 2, 3, 4]
    [video] = [a for a in artifacts if a.kind == "output"]
    [preview] = [a for a in artifacts if a.kind == "video"]
    assert preview.content_type == "image/webp"
    assert (video.frames, video.fps, video.width, video.height, video.content_type) == (4, 10.0, 48, 36, "video/mp4")

    # The resumed frames are exactly those of a run that never stopped.
    params = parse_params("video_gatys", {"size": 48, "iterations": 4, "frame_iterations": 3, "precision": "fp32"})
    info = probe_video(clip)
    reference = [out for out, _ in ruder_gatys(read_frames(clip, info, size=48), [Image.open(style)], params)]
    store = app.workshop().store
    for checkpoint, expected in zip(checkpoints, reference):
        stored = np.asarray(Image.open(io.BytesIO(store.get_bytes(checkpoint.uri))).convert("RGB"))
        assert np.array_equal(stored, expected)

    mp4 = store.path_for_uri(video.uri)
    with av.open(str(mp4)) as container:
        assert len(container.streams.audio) == 1
        assert sum(1 for _ in container.decode(video=0)) == 4

    # Running the flow again finds nothing to do.
    assert stylize_video(return_state=True).is_completed()
    assert len(catalog_rows(app, Run)) == 2


def test_stylize_video_cli_writes_a_playable_mp4_and_refuses_bad_input(atelier, tmp_path):
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    clip, style = inputs(tmp_path / "in")
    out = tmp_path / "out.mp4"
    result = app.cli("stylize-video", str(clip), str(out), "--style", str(style), "--size", "48", "--frames", "3",
                     "--iterations", "3", "--frame-iterations", "2", "--param", "passes=2")
    assert "3 frames at 10 fps" in result.output and "warping_error=" in result.output
    from tasks.video_io import probe_video

    info = probe_video(out)
    assert (info.frames, info.fps, info.width, info.height, info.has_audio) == (3, 10.0, 48, 36, True)
    assert out.with_suffix(".poster.png").is_file()

    beyond = app.cli("stylize-video", str(clip), str(out), "--style", str(style), "--start", "3", "--frames", "5",
                     expect=2)
    assert "frame range 3..7 is outside the clip (frames 0..3)" in beyond.output
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert "not a readable video" in app.cli("stylize-video", str(text), str(out), "--style", str(style), expect=2).output


def test_a_bad_video_job_fails_with_its_reason_and_the_batch_goes_on(prefect_api, atelier, tmp_path):
    from db.models import Job
    from flows.video import stylize_video

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    clip, style = inputs(tmp_path / "in")
    add_video_job(app, clip, style)
    params = [arg for param in (*JOB_PARAMS, "start=2", "frames=5") for arg in ("--param", param)]
    app.cli("jobs", "add", "--content", "pan", "--style", "strokes", "--method", "video_gatys", *params)

    assert stylize_video(return_state=True).is_failed()
    good, bad = catalog_rows(app, Job)
    assert good.status == "succeeded"
    assert (bad.status, bad.last_error_type) == ("failed", "InvalidInputError")
    assert "frame range 2..6 is outside the clip (frames 0..3)" in bad.last_error_message
    assert bad.attempts == 1  # a permanent error is not retried


def test_a_killed_video_run_continues_from_its_last_finished_frame(prefect_api, atelier, tmp_path):
    """SIGKILL the worker mid-clip; once the lease lapses the next run resumes, not restarts."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime

    from db.models import Artifact, Job, Run
    from flows.video import stylize_video
    from tests.test_flows_recovery import REPO

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", lease_seconds=10)
    clip, style = inputs(tmp_path / "in")
    add_video_job(app, clip, style)
    worker = subprocess.Popen(
        [sys.executable, "-c", "from flows.video import stylize_video; stylize_video()"],
        cwd=REPO, env={**os.environ, "PREFECT_API_URL": prefect_api}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while sum(a.kind == "checkpoint" for a in catalog_rows(app, Artifact)) < 2:
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never checkpointed two frames"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed_at = sum(a.kind == "checkpoint" for a in catalog_rows(app, Artifact))
    assert killed_at < 4
    [job] = catalog_rows(app, Job)
    while job.lease_expires_at > datetime.now(UTC):
        time.sleep(0.5)
        [job] = catalog_rows(app, Job)

    assert stylize_video(return_state=True).is_completed()
    [dead, finished] = catalog_rows(app, Run)
    assert (dead.status, dead.error_type) == ("failed", "LeaseExpired")
    assert finished.status == "succeeded"
    assert finished.metrics["frames_resumed"] == killed_at
    assert sorted(a.frames for a in catalog_rows(app, Artifact) if a.kind == "checkpoint") == [1, 2, 3, 4]


def test_the_nightly_gallery_runs_video_jobs_beside_picture_jobs(prefect_api, atelier, tmp_path):
    from db.models import Artifact, Job
    from flows.gallery import gallery
    from tests.fixtures.prefect import create_gallery_jobs, write_gallery_inputs

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "pictures", contents=1, styles=1)
    create_gallery_jobs(app, tmp_path / "pictures", "noop", "size=48")
    clip, style = inputs(tmp_path / "in")
    add_video_job(app, clip, style)

    report = gallery(return_state=True).result()
    assert {job.method: job.status for job in catalog_rows(app, Job)} == {"noop": "succeeded", "video_gatys": "succeeded"}
    outputs = {a.content_type for a in catalog_rows(app, Artifact) if a.kind == "output"}
    assert outputs == {"image/png", "video/mp4"}
    assert report.contact_sheet

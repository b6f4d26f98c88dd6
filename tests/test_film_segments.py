"""A film through the catalog: planned into segments (child jobs), each rendered once, assembled once.

Real Prefect, a SQLite catalog and a folder store; a tiny clip of four shots (three frames each,
joined at known frames) with audio, and segments of at most three frames, so the plan is one
segment per shot.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.prefect import catalog_rows
from tests.video_clips import panning_frames, texture, write_clip

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SHOT_FRAMES = 3
SHOTS = 4
PARAMS = {"size": 32, "iterations": 2, "frame_iterations": 1, "precision": "fp32"}


def film_inputs(folder: Path) -> tuple[Path, Path]:
    """Four shots of different textures, each panning, with a tone under them."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [frame for shot in range(SHOTS) for frame in panning_frames(SHOT_FRAMES, height=24, width=32, seed=shot)]
    clip = write_clip(folder / "film.mp4", frames, fps=10, audio=True)
    style = folder / "strokes.png"
    Image.fromarray(texture(32, 32, seed=9)).save(style)
    return clip, style


def add_film_job(app, clip: Path, style: Path) -> None:
    app.cli("catalog", "add", str(clip), "--role", "video", "--tag", "films")
    app.cli("catalog", "add", str(style), "--role", "style")
    params = [arg for key, value in PARAMS.items() for arg in ("--param", f"{key}={value}")]
    app.cli("jobs", "matrix", "--contents", "tag:films", "--styles", "strokes", "--method", "video_gatys", *params)


def decoded_frames(path: Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)), len(container.streams.audio)


def film_progress_shown(flow_run_id: object, film_id: int) -> float:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    [progress] = [a for a in artifacts if a.type == "progress" and (a.description or "").startswith(f"film job {film_id}:")]
    return float(progress.data)


def test_a_film_is_planned_into_segments_rendered_once_each_and_assembled_once(prefect_api, atelier, tmp_path):
    from db.models import Artifact, Job, Run
    from flows.video import stylize_video
    from style_engine.params import parse_params
    from style_engine.video.ruder import ruder_gatys
    from tasks.video_io import probe_video, read_frames

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", segment_frames=SHOT_FRAMES)
    clip, style = film_inputs(tmp_path / "in")
    add_film_job(app, clip, style)
    state = stylize_video(limit=10, return_state=True)
    assert state.is_completed()

    jobs = catalog_rows(app, Job)
    [film] = [job for job in jobs if job.parent_job_id is None]
    segments = sorted((job for job in jobs if job.parent_job_id == film.id), key=lambda job: job.params["segment"]["index"])
    assert [(s.params["segment"]["start"], s.params["segment"]["end"]) for s in segments] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert all(s.params["shot_starts"] == [3, 6, 9] and s.params["segment"]["fresh"] for s in segments)
    assert Counter(job.status for job in jobs) == {"succeeded": 5}
    runs = catalog_rows(app, Run)
    assert Counter(run.job_id for run in runs) == {job.id: 1 for job in jobs}  # each segment once, one assembly
    [assembly] = [run for run in runs if run.job_id == film.id]
    assert [entry["job_id"] for entry in assembly.metrics["segments"]] == [s.id for s in segments]
    assert assembly.metrics["frames"] == 12

    artifacts = catalog_rows(app, Artifact)
    [output] = [a for a in artifacts if a.kind == "output"]
    assert (output.job_id, output.frames, output.content_type) == (film.id, 12, "video/mp4")
    assert {a.job_id for a in artifacts if a.kind in ("thumbnail", "video")} >= {film.id}
    store = app.workshop().store
    assert decoded_frames(store.path_for_uri(output.uri)) == (12, 1)

    # The segments' frames are those of one host rendering the clip with its shots in one piece.
    params = parse_params("video_gatys", PARAMS)
    reference = [out for out, _ in ruder_gatys(read_frames(clip, probe_video(clip), size=32), [Image.open(style)],
                                               params, shot_starts=[3, 6, 9])]
    for segment in segments:
        checkpoints = sorted((a for a in artifacts if a.kind == "checkpoint" and a.job_id == segment.id),
                             key=lambda a: a.frames)
        start = segment.params["segment"]["start"]
        assert [a.frames for a in checkpoints] == [1, 2, 3]
        for checkpoint in checkpoints:
            stored = np.asarray(Image.open(io.BytesIO(store.get_bytes(checkpoint.uri))).convert("RGB"))
            assert np.array_equal(stored, reference[start + checkpoint.frames - 1])

    # `jobs show` tells the film's segments, where each ran and how far it is.
    shown = app.cli("jobs", "show", str(film.id)).output
    host = next(run.host for run in runs if run.job_id == segments[0].id)
    assert "12 of 12 done" in shown
    assert "None" not in shown  # the preview's size is not stored: said without one
    assert f"segment 0 (job {segments[0].id}): frames 0-2, succeeded on {host}, 3 of 3 frames done" in shown
    assert f"segment 3 of job {film.id}, frames 9-11, shots start at 3, 6, 9" in app.cli(
        "jobs", "show", str(segments[3].id)).output
    from tests.test_web import make_client

    page = make_client(app.env["ATELIER_DATABASE_URL"], app.env["ATELIER_STORE_URL"]).get("/jobs").text
    assert f"film: 12 of 12 frames on {host}" in page
    assert f"segment 3 (frames 9-11) of job {film.id}" in page

    # The dashboard shows the film's progress: frames stored by every host.
    assert film_progress_shown(state.state_details.flow_run_id, film.id) == 100.0

    # Again: nothing left to do, nothing assembled twice.
    assert stylize_video(limit=10, return_state=True).is_completed()
    assert len(catalog_rows(app, Run)) == len(runs)


def test_a_clip_of_one_segment_renders_in_one_piece(prefect_api, atelier, tmp_path):
    from db.models import Job
    from flows.video import stylize_video

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", segment_frames=SHOT_FRAMES * SHOTS)
    clip, style = film_inputs(tmp_path / "in")
    add_film_job(app, clip, style)
    assert stylize_video(return_state=True).is_completed()
    [job] = catalog_rows(app, Job)
    assert job.status == "succeeded"


def test_a_long_shot_is_chunked_and_each_chunk_continues_the_chain_of_the_one_before(
    prefect_api, atelier, tmp_path, monkeypatch
):
    """Ruder inside one shot: a chunk waits for the chunk before it and starts from its stored
    outputs (the hand-over), so the film has exactly the bytes of a one-host render. And an
    assembly whose worker died is done again, from the stored segments, after its lease."""
    import time

    import tasks.film
    from db.models import Artifact, Job, Run
    from db.segments import take_assembly
    from flows.video import stylize_video
    from style_engine.params import parse_params
    from style_engine.video.ruder import ruder_gatys
    from tasks.video_io import probe_video, read_frames

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", segment_frames=3)
    (tmp_path / "in").mkdir()
    clip = write_clip(tmp_path / "in" / "take.mp4", panning_frames(8, height=24, width=32, seed=3), fps=10)
    style = tmp_path / "in" / "strokes.png"
    Image.fromarray(texture(32, 32, seed=9)).save(style)
    add_film_job(app, clip, style)

    def dies_assembling(workshop, film_id, run_film, logger):  # a worker that wins the assembly, then dies
        take_assembly(workshop.catalog, film_id, "lost-host:999999", 0.5)

    with monkeypatch.context() as patch:
        patch.setattr(tasks.film, "assemble_if_last", dies_assembling)
        assert stylize_video(limit=10, return_state=True).is_completed()
    [film] = [job for job in catalog_rows(app, Job) if job.parent_job_id is None]
    assert (film.status, film.claimed_by) == ("running", "lost-host:999999")
    time.sleep(1.0)  # its lease runs out
    assert stylize_video(limit=10, return_state=True).is_completed()

    jobs = catalog_rows(app, Job)
    assert [run.job_id for run in catalog_rows(app, Run)].count(film.id) == 1  # assembled once, by the next run
    assert [a.job_id for a in catalog_rows(app, Artifact) if a.kind == "output"] == [film.id]
    chunks = sorted((job for job in jobs if job.parent_job_id), key=lambda job: job.params["segment"]["index"])
    assert [(c.params["segment"]["context_start"], c.params["segment"]["start"], c.params["segment"]["end"])
            for c in chunks] == [(0, 0, 3), (0, 3, 5), (1, 5, 8)]
    assert Counter(job.status for job in jobs) == {"succeeded": 4}
    reference = [out for out, _ in ruder_gatys(read_frames(clip, probe_video(clip), size=32), [Image.open(style)],
                                               parse_params("video_gatys", PARAMS))]
    store = app.workshop().store
    artifacts = catalog_rows(app, Artifact)
    for chunk in chunks:
        start = chunk.params["segment"]["start"]
        for checkpoint in (a for a in artifacts if a.kind == "checkpoint" and a.job_id == chunk.id):
            stored = np.asarray(Image.open(io.BytesIO(store.get_bytes(checkpoint.uri))).convert("RGB"))
            assert np.array_equal(stored, reference[start + checkpoint.frames - 1]), (chunk.id, checkpoint.frames)

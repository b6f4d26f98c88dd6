"""A film across two hosts on Prefect's own machinery: two `prefect worker` processes of the
`atelier` pool acting as host-a and host-b (ATELIER_HOST), one PostgreSQL catalog.

A clip of four shots is planned into four segments. host-a plans it and starts on them; host-b
joins. host-a is SIGKILLed (worker and flow run together) after finishing one segment and in the
middle of another; host-b renders the rest and, once the dead host's lease has run out (in the same
flow run or the next), takes up its segment from the last stored frame and assembles the film: one MP4 with every frame and the
audio, each segment succeeded once, no stored frame made twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.fleet import deploy_from_prefect_yaml
from tests.fixtures.prefect import catalog_rows
from tests.test_film_segments import decoded_frames
from tests.test_fleet_workers import wait_until
from tests.video_clips import panning_frames, texture, write_clip

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(900)]

LEASE_SECONDS = 10  # the shortest the settings allow: the killed host's segment comes back after it
SHOT_FRAMES = 4  # four shots of four frames, segments of four frames: one segment per shot
PARAMS = ("size=32", "iterations=2", "frame_iterations=1", "precision=fp32")


def add_film(app, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frames = [frame for shot in range(4) for frame in panning_frames(SHOT_FRAMES, height=24, width=32, seed=shot)]
    write_clip(folder / "film.mp4", frames, fps=10, audio=True)
    Image.fromarray(texture(32, 32, seed=9)).save(folder / "strokes.png")
    app.cli("catalog", "add", str(folder / "film.mp4"), "--role", "video", "--tag", "films")
    app.cli("catalog", "add", str(folder / "strokes.png"), "--role", "style")
    params = [arg for param in PARAMS for arg in ("--param", param)]
    app.cli("jobs", "matrix", "--contents", "tag:films", "--styles", "strokes", "--method", "video_gatys", *params)


def test_two_hosts_share_a_film_and_one_killed_mid_segment_loses_only_its_frame_in_flight(
    fleet, atelier, postgres_url, tmp_path
):
    from sqlalchemy import func, select

    from db.models import Artifact, Job, Run

    app = atelier(postgres_url, f"file://{tmp_path / 'store'}", lease_seconds=LEASE_SECONDS,
                  segment_frames=SHOT_FRAMES)
    add_film(app, tmp_path / "in")
    catalog = app.workshop().catalog
    deployment_id = deploy_from_prefect_yaml(fleet.server, "stylize-video")

    def host_env(host: str) -> dict[str, str]:
        return {**app.env, "ATELIER_CACHE_DIR": str(tmp_path / host / "cache")}

    def run_flow() -> object:
        with fleet.server.client() as client:
            return client.create_flow_run_from_deployment(deployment_id, parameters={"limit": 20}).id

    def segments_exist() -> bool:
        with catalog.reader() as session:
            return bool(session.scalar(select(func.count()).where(Job.parent_job_id.is_not(None))))

    host_a = fleet.start_worker("host-a", host_env("host-a"))
    run_flow()
    wait_until(segments_exist, "host-a to plan the film", fleet)
    host_b = fleet.start_worker("host-b", host_env("host-b"))
    second = run_flow()  # host-a runs one flow run at a time: this one is host-b's

    def host_a_mid_segment() -> list[int]:
        """host-a's segment in progress (some frames stored, not all) once it finished another."""
        with catalog.reader() as session:
            done = session.scalar(select(func.count()).where(Run.host == "host-a", Run.status == "succeeded"))
            running = session.scalars(select(Job.id).where(Job.status == "running",
                                                           Job.claimed_by.startswith("host-a:"))).all()
            stored = {job_id: session.scalar(select(func.count()).where(Artifact.job_id == job_id,
                                                                       Artifact.kind == "checkpoint"))
                      for job_id in running}
        return [job_id for job_id, count in stored.items() if done and 0 < count < SHOT_FRAMES]

    [killed] = wait_until(host_a_mid_segment, "host-a to be mid-segment after one segment", fleet, poll=0.02)
    fleet.kill_host(host_a)
    with catalog.reader() as session:
        stored_before_kill = session.scalar(select(func.count()).where(Artifact.job_id == killed,
                                                                      Artifact.kind == "checkpoint"))

    def finished(run_id: object) -> bool:
        with fleet.server.client() as client:
            return client.read_flow_run(run_id).state.is_final()

    wait_until(lambda: finished(second), "host-b's flow run to end", fleet, poll=0.5)

    def film_done() -> bool:
        with catalog.reader() as session:
            return session.scalar(select(Job.status).where(Job.parent_job_id.is_(None))) == "succeeded"

    def lease_gone() -> bool:  # by the database's clock
        with catalog.reader() as session:
            job = session.get(Job, killed)
            return job.status != "running" or bool(session.scalar(select(func.now() > job.lease_expires_at)))

    if not film_done():  # host-b's run ended before the dead host's lease did: the next run takes it up
        wait_until(lease_gone, "the dead host's lease to expire", fleet, poll=0.5)
        third = run_flow()
        wait_until(lambda: finished(third), "the next run to end", fleet, poll=0.5)
    assert film_done(), host_b.output()[-3000:]

    jobs = catalog_rows(app, Job)
    runs = catalog_rows(app, Run)
    [film] = [job for job in jobs if job.parent_job_id is None]
    segments = [job for job in jobs if job.parent_job_id == film.id]
    assert len(segments) == 4 and Counter(job.status for job in jobs) == {"succeeded": 5}
    succeeded = [run for run in runs if run.status == "succeeded"]
    assert Counter(run.job_id for run in succeeded) == {job.id: 1 for job in jobs}, "a segment ran twice, or never"
    assert {run.host for run in succeeded if run.job_id != film.id} == {"host-a", "host-b"}
    [lost] = [run for run in runs if run.status != "succeeded"]
    assert (lost.job_id, lost.host, lost.error_type) == (killed, "host-a", "LeaseExpired")
    [resumed] = [run for run in succeeded if run.job_id == killed]
    assert (resumed.host, resumed.metrics["frames_resumed"]) == ("host-b", stored_before_kill)

    artifacts = catalog_rows(app, Artifact)
    stored = Counter((a.job_id, a.frames) for a in artifacts if a.kind == "checkpoint")
    assert stored == {(job.id, frame): 1 for job in segments for frame in range(1, SHOT_FRAMES + 1)}, \
        "a stored frame was made twice"
    [output] = [a for a in artifacts if a.kind == "output"]
    assert output.job_id == film.id
    assert decoded_frames(app.workshop().store.path_for_uri(output.uri)) == (4 * SHOT_FRAMES, 1)

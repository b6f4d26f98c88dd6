"""A small real gallery for the web tests: images and outputs in a real local store, with
jobs, runs and artifacts recorded through the catalog's own functions (no engine run).

With `media=True` it also holds a video artwork (a real H.264 MP4, written by the same
encoder the video jobs use) and a trained model with its training run, validation losses
and an artwork made with it; these are recorded first, so the picture artworks stay the
newest and the grid tests see the same pages.

Names and tags are hostile on purpose (`<script>`, quotes, `../`), so every page that shows
them proves they are escaped.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from db.claims import claim_jobs
from db.images import register_image
from db.jobs import add_job
from db.runs import ArtifactRecord, complete_run, fail_run, start_run
from storage.local import LocalStore

HOSTILE_TITLE = "<script>window.pwned=1</script>\"quoted' ../../etc/passwd"
HOSTILE_TAG = "<b>bold</b>\"'../x"
HOSTILE_MODEL = "<script>window.pwned=1</script>'model\" ../x"
VIDEO_FRAMES, VIDEO_FPS = 24, 12
WORKER = "web-test"
FLOW_RUN = "7f1c2f8e-0000-4000-8000-000000000001"


@dataclass
class Gallery:
    """Ids of what `build_gallery` recorded."""

    contents: list[int] = field(default_factory=list)
    styles: list[int] = field(default_factory=list)
    artworks: list[int] = field(default_factory=list)
    failed_jobs: list[int] = field(default_factory=list)
    pending_jobs: list[int] = field(default_factory=list)
    video_artwork: int | None = None
    video_clip: int | None = None
    model_id: int | None = None
    model_preview: int | None = None  # the training job's output
    model_artwork: int | None = None  # an `itn` artwork made with the model


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _image(session, store: LocalStore, role: str, title: str, color, tags=(), artist=None) -> int:
    data = png(color)
    stored = store.put_bytes(data, suffix=".png")
    image, _ = register_image(session, sha256=stored.sha256, role=role, uri=stored.uri, width=48, height=32,
                              format="PNG", bytes=len(data), title=title, artist=artist, tags=tags,
                              source_name=f"{role}-{stored.sha256[:6]}.png")
    return image.id


def build_gallery(catalog, store: LocalStore, artworks: int = 5, *, media: bool = False) -> Gallery:
    """Two contents (one hostile), two styles (one hostile), `artworks` succeeded jobs with a loss
    curve, one failed job in batch FLOW_RUN and one pending job (and the media, see above)."""
    g = Gallery()
    if media:
        add_video_artwork(catalog, store, g)
        add_trained_model(catalog, store, g)
    with catalog.session() as session:
        g.contents = [_image(session, store, "content", "Harbour", (200, 120, 40), tags=["city"]),
                      _image(session, store, "content", HOSTILE_TITLE, (40, 200, 120), tags=[HOSTILE_TAG])]
        g.styles = [_image(session, store, "style", "Starry", (20, 40, 160), artist="Vincent van Gogh"),
                    _image(session, store, "style", HOSTILE_TITLE + " style", (160, 20, 40), tags=[HOSTILE_TAG],
                           artist="O'Keeffe \"<i>\"")]
        job_ids = []
        for i in range(artworks + 2):
            job, _ = add_job(session, content_id=g.contents[i % 2], style_ids=[g.styles[i % 2]], method="gatys",
                             params={"size": 32 + i, "iterations": 20, "seed": i})
            session.flush()
            job_ids.append(job.id)
    done, failed, pending = job_ids[:artworks], job_ids[artworks], job_ids[artworks + 1]
    claim_jobs(catalog, len(job_ids) - 1, WORKER, 600, job_ids=[*done, failed])
    for i, job_id in enumerate(done):
        run_id = start_run(catalog, job_id, WORKER, seed=i, versions={"torch": "2.14.1", "weights_sha256": "c3" * 32},
                           device="cpu", host="test", flow_run_id=FLOW_RUN)
        output = store.put_bytes(png((i * 40 % 256, 90, 200), (64, 48)), suffix=".png")
        thumb = store.put_bytes(png((i * 40 % 256, 90, 201), (32, 24)), suffix=".png")
        curve = {"evaluation": list(range(1, 21)), "total": [100.0 / (s + 1) for s in range(20)],
                 "content": [1.0 + s / 10 for s in range(20)], "style": [90.0 / (s + 1) for s in range(20)]}
        ids = complete_run(
            catalog, run_id, WORKER, timings={"load": 0.1, "compute": 1.0 + i, "upload": 0.1},
            metrics={"ssim_to_content": 0.5 + i / 20, "style_loss_drop": 10.0 + i}, loss_curve=curve,
            artifacts=[ArtifactRecord("output", output.uri, output.sha256, output.size, "image/png", 64, 48),
                       ArtifactRecord("thumbnail", thumb.uri, thumb.sha256, thumb.size, "image/png", 32, 24)],
        )
        g.artworks.append(ids[0])
    run_id = start_run(catalog, failed, WORKER, seed=0, device="cpu", host="test", flow_run_id=FLOW_RUN)
    fail_run(catalog, run_id, WORKER, error_type="InvalidInputError", message="content image <b>too small</b>")
    g.failed_jobs, g.pending_jobs = [failed], [pending]
    return g


def _run_job(catalog, store: LocalStore, job_id: int, outputs: list[ArtifactRecord], *, curve=None,
             metrics=None) -> list[int]:
    """Claim, start and complete one job with `outputs`; returns the artifact ids."""
    claim_jobs(catalog, 1, WORKER, 600, job_ids=[job_id])
    run_id = start_run(catalog, job_id, WORKER, seed=0, versions={"torch": "2.14.1"}, device="cpu", host="test")
    return complete_run(catalog, run_id, WORKER, timings={"compute": 2.0}, metrics=metrics or {}, loss_curve=curve,
                        artifacts=outputs)


def _picture(store: LocalStore, kind: str, color, size=(64, 48)) -> ArtifactRecord:
    stored = store.put_bytes(png(color, size), suffix=".png")
    return ArtifactRecord(kind, stored.uri, stored.sha256, stored.size, "image/png", *size)


def add_video_artwork(catalog, store: LocalStore, g: Gallery) -> None:
    """A clip, a style, and a video_gatys artwork: a 2 s MP4 (VIDEO_FRAMES at VIDEO_FPS) and its poster."""
    import tempfile

    import numpy as np

    from db.models import ImageRole
    from tasks.video_io import write_mp4

    frames = [np.full((48, 64, 3), (i * 10 % 256, 80, 160), dtype=np.uint8) for i in range(VIDEO_FRAMES)]
    with tempfile.TemporaryDirectory() as folder:
        write_mp4(frames, Path(folder) / "clip.mp4", VIDEO_FPS)
        clip = store.put_file(Path(folder) / "clip.mp4", suffix=".mp4", content_type="video/mp4")
    with catalog.session() as session:
        image, _ = register_image(session, sha256=clip.sha256, role="video", uri=clip.uri, width=64, height=48,
                                  format="MP4", bytes=clip.size, title="Harbour at dusk (clip)", source_name="dusk.mp4")
        style = _image(session, store, "style", "Wave", (10, 60, 120), artist="Hokusai")
        job, _ = add_job(session, content_id=image.id, style_ids=[style], method="video_gatys",
                         params={"size": 64, "frames": VIDEO_FRAMES, "iterations": 10}, content_role=ImageRole.VIDEO)
        session.flush()
        job_id, g.video_clip = job.id, image.id
    output = ArtifactRecord("output", clip.uri, clip.sha256, clip.size, "video/mp4", 64, 48, VIDEO_FRAMES, VIDEO_FPS)
    g.video_artwork = _run_job(catalog, store, job_id, [output, _picture(store, "thumbnail", (9, 80, 160))])[0]


def add_trained_model(catalog, store: LocalStore, g: Gallery) -> None:
    """A training job (preview output, training loss curve), its Model with validation history
    under a hostile name, and an `itn` artwork made with it."""
    from db.trained_models import record_model

    with catalog.session() as session:
        photo = _image(session, store, "content", "Lighthouse", (230, 230, 210))
        style = _image(session, store, "style", "Composition VIII", (200, 30, 30), artist="Kandinsky")
        train, _ = add_job(session, content_id=photo, style_ids=[style], method="itn-train",
                           params={"name": HOSTILE_MODEL, "steps": 40, "arch": "light"})
        use, _ = add_job(session, content_id=photo, style_ids=[style], method="itn",
                         params={"model": HOSTILE_MODEL, "size": 64})
        session.flush()
        train_id, use_id = train.id, use.id
    steps = list(range(1, 41))
    curve = {"evaluation": steps, "total": [50.0 / s for s in steps], "content": [2.0] * 40,
             "style": [48.0 / s for s in steps]}
    ids = _run_job(catalog, store, train_id, [_picture(store, "output", (240, 60, 60)),
                                              _picture(store, "thumbnail", (240, 60, 61), (32, 24))], curve=curve)
    g.model_preview = ids[0]
    weights = store.put_bytes(b"not really a network", suffix=".pt")
    history = [{"step": float(s), "total": 40.0 / s, "content": 2.0, "style": 38.0 / s} for s in (10, 20, 30, 40)]
    with catalog.reader() as session:
        from db.models import Run

        run_id = session.query(Run.id).filter(Run.job_id == train_id).scalar()
    g.model_id = record_model(
        catalog, name=HOSTILE_MODEL, method="itn", style_id=style, run_id=run_id, job_id=train_id,
        weights=ArtifactRecord("model", weights.uri, weights.sha256, weights.size, "application/octet-stream"),
        params={"name": HOSTILE_MODEL, "arch": "light", "steps": 40},
        metrics={"steps": 40, "losses": {"total": 1.25}, "validation_losses": {"total": 1.0},
                 "validation_history": history, "versions": {"torch": "2.14.1"}, "device": "cpu"},
    )
    g.model_artwork = _run_job(catalog, store, use_id, [_picture(store, "output", (250, 90, 90)),
                                                        _picture(store, "thumbnail", (250, 90, 91), (32, 24))])[0]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def live_server(app) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, in a thread, for a real browser; yields its base URL."""
    import uvicorn

    from tests.fixtures.s3 import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

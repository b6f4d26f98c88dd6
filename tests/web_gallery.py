"""A small real gallery for the web tests: images and outputs in a real local store, with
jobs, runs and artifacts recorded through the catalog's own functions (no engine run).

Names and tags are hostile on purpose (`<script>`, quotes, `../`), so every page that shows
them proves they are escaped.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from PIL import Image

from db.claims import claim_jobs
from db.images import register_image
from db.jobs import add_job
from db.runs import ArtifactRecord, complete_run, fail_run, start_run
from storage.local import LocalStore

HOSTILE_TITLE = "<script>window.pwned=1</script>\"quoted' ../../etc/passwd"
HOSTILE_TAG = "<b>bold</b>\"'../x"
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


def build_gallery(catalog, store: LocalStore, artworks: int = 5) -> Gallery:
    """Two contents (one hostile), two styles (one hostile), `artworks` succeeded jobs with a loss
    curve, one failed job in batch FLOW_RUN and one pending job."""
    g = Gallery()
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


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

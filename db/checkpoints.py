"""Per-frame checkpoints of long (video) jobs: recorded as they are made, found again on resume.

A checkpoint is an Artifact of kind ``checkpoint`` tied to its job (and the run that made it),
with ``frames`` = how many frames were done once it was written (so frame index + 1). A job's
parameters never change, so any checkpoint of the job is valid for any later attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from db.models import Artifact, ArtifactKind
from db.session import Catalog


@dataclass(frozen=True)
class Checkpoint:
    """Where a finished frame is stored: the frame's index (from 0) in the job's frame range."""

    index: int
    uri: str
    sha256: str


def record_checkpoint(
    catalog: Catalog, *, job_id: int, run_id: int, index: int, uri: str, sha256: str, size: int,
    content_type: str, width: int, height: int,
) -> None:
    """Record frame ``index`` at once (its own transaction): a kill one frame later keeps it."""
    with catalog.session() as session:
        session.add(
            Artifact(
                job_id=job_id, run_id=run_id, kind=ArtifactKind.CHECKPOINT.value, uri=uri, sha256=sha256,
                bytes=size, content_type=content_type, width=width, height=height, frames=index + 1,
            )
        )


def finished_frames(catalog: Catalog, job_id: int) -> list[Checkpoint]:
    """The job's checkpointed frames 0..k-1 (the longest gap-free run from frame 0), one per index."""
    with catalog.reader() as session:
        rows = session.execute(
            select(Artifact.frames, Artifact.uri, Artifact.sha256)
            .where(Artifact.job_id == job_id, Artifact.kind == ArtifactKind.CHECKPOINT.value)
            .order_by(Artifact.frames, Artifact.id.desc())
        ).all()
    by_index: dict[int, Checkpoint] = {}
    for frames, uri, sha256 in rows:
        if frames is not None and frames >= 1:
            by_index.setdefault(frames - 1, Checkpoint(frames - 1, uri, sha256))
    done: list[Checkpoint] = []
    while len(done) in by_index:
        done.append(by_index[len(done)])
    return done

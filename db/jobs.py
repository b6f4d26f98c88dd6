"""Creating jobs and reading what a worker needs to run one.

A job's idempotency key is a hash of everything that determines its output: the method,
the content's sha256, the ordered styles' sha256 with their weights, and the canonical
parameters. Adding the same work twice therefore returns the existing job.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from db.errors import InvalidRequest, NotFound
from db.models import Image, ImageRole, Job, JobStyle


def idempotency_key(
    method: str, content_sha256: str, styles: Sequence[tuple[str, float]], params: Mapping[str, Any]
) -> str:
    """sha256 over a canonical JSON of the job's inputs (the params must already be canonical)."""
    document = {
        "method": method,
        "content": content_sha256,
        "styles": [[sha, float(weight)] for sha, weight in styles],
        "params": params,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def add_job(
    session: Session,
    *,
    content_id: int,
    style_ids: Sequence[int],
    method: str,
    params: Mapping[str, Any],
    style_weights: Sequence[float] | None = None,
    priority: int = 0,
    max_attempts: int = 3,
    content_role: ImageRole = ImageRole.CONTENT,
) -> tuple[Job, bool]:
    """Create a pending job unless an identical one exists; returns (job, created).

    `params` must be the method's canonical dict (validated by the caller against the
    engine's parameter types); the catalog stores it as given. Weights default to 1.0 each.
    `content_role` is `video` for the video methods, whose content is a clip.
    """
    if not style_ids:
        raise InvalidRequest("a job needs at least one style image")
    weights = [1.0] * len(style_ids) if style_weights is None else [float(w) for w in style_weights]
    if len(weights) != len(style_ids):
        raise InvalidRequest(f"{len(weights)} style weights given for {len(style_ids)} styles")
    if any(not math.isfinite(w) or w <= 0 for w in weights):
        raise InvalidRequest(f"style weights must be positive numbers, got {weights}")
    if max_attempts < 1:
        raise InvalidRequest(f"max_attempts must be at least 1, got {max_attempts}")
    content = _image_with_role(session, content_id, content_role, "content")
    styles = [_image_with_role(session, sid, ImageRole.STYLE, "style") for sid in style_ids]
    key = idempotency_key(method, content.sha256, [(s.sha256, w) for s, w in zip(styles, weights)], params)
    existing = session.scalar(select(Job).where(Job.idempotency_key == key))
    if existing is not None:
        return existing, False
    job = Job(
        content_id=content.id,
        method=method,
        params=dict(params),
        priority=priority,
        max_attempts=max_attempts,
        idempotency_key=key,
        styles=[JobStyle(position=i, image_id=s.id, weight=w) for i, (s, w) in enumerate(zip(styles, weights))],
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        winner = session.scalar(select(Job).where(Job.idempotency_key == key))
        if winner is None:
            raise
        return winner, False
    return job, True


def _image_with_role(session: Session, image_id: int, role: ImageRole, what: str) -> Image:
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"no image with id {image_id} (given as the {what} image)")
    if image.role != role:
        raise InvalidRequest(f"image {image_id} has role {image.role!r}, so it cannot be the {what} image")
    return image


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return job


@dataclass(frozen=True)
class ImageRef:
    """An input as a worker needs it: where to fetch it and the checksum to verify it."""

    id: int
    sha256: str
    uri: str
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class JobSpec:
    """A detached snapshot of a job, safe to pass between threads and processes."""

    id: int
    method: str
    params: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    claimed_by: str | None
    content: ImageRef
    styles: tuple[ImageRef, ...]
    style_weights: tuple[float, ...]
    parent_job_id: int | None = None  # the film, when this job is one of its segments (db.segments)


def _ref(image: Image) -> ImageRef:
    return ImageRef(image.id, image.sha256, image.uri, image.width, image.height, image.format)


def job_spec(session: Session, job_id: int) -> JobSpec:
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(selectinload(Job.content), selectinload(Job.styles).selectinload(JobStyle.image))
    )
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return JobSpec(
        id=job.id,
        method=job.method,
        params=dict(job.params),
        status=job.status,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        claimed_by=job.claimed_by,
        content=_ref(job.content),
        styles=tuple(_ref(s.image) for s in job.styles),
        style_weights=tuple(s.weight for s in job.styles),
        parent_job_id=job.parent_job_id,
    )

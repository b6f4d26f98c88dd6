"""Turning a request for jobs into catalog jobs: canonical parameters, the images a selector
names, one job or a content x style matrix (`atelier jobs add | matrix`, `atelier demo`).

Parameters are validated against the method's parameter class and completed with its
defaults before the job's idempotency key is computed, so two spellings of one request
(`size=64` or `size=64.0`, a default given or left out) make one job, never two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atelier.services.errors import BadInput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from db.models import Image, ImageRole


@dataclass(frozen=True)
class JobRequest:
    """What every job of one request shares: the method, its parameters as given, and how to run."""

    method: str
    params: Mapping[str, Any]
    priority: int = 0
    max_attempts: int = 3


@dataclass(frozen=True)
class JobAdded:
    """The job a request names, and whether the request created it (else it existed)."""

    job_id: int
    created: bool


@dataclass(frozen=True)
class JobsAdded:
    """The jobs a matrix names (contents x styles, in order), and how many of them it created."""

    job_ids: list[int]
    new: int
    contents: int
    styles: int

    @property
    def existing(self) -> int:
        return len(self.job_ids) - self.new


def canonical_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated, complete parameters (defaults filled in), so equal jobs get equal keys.

    `init=image` is refused: a job carries no init image, so it could only fail at run time.
    """
    from style_engine.params import parse_params

    canonical = parse_params(method, params).to_dict()
    if canonical.get("init") == "image":
        raise BadInput("--param init=image: a job has no init image to start from; use init=content, noise or style")
    return canonical


def content_role(method: str) -> ImageRole:
    """Video methods (video_*) stylize clips: their content is an image of role video."""
    from db.models import ImageRole

    return ImageRole.VIDEO if method.startswith("video_") else ImageRole.CONTENT


def select_images(session: Session, selector: str, role: str) -> list[Image]:
    """`tag:NAME` -> every image of `role` with that tag; anything else -> that one image."""
    from db.images import find_image, images_with_tag

    if selector.startswith("tag:"):
        images = images_with_tag(session, selector[4:], role=role)
        if not images:
            raise BadInput(f"no {role} images are tagged {selector[4:]!r}")
        return images
    return [find_image(session, selector, role=role)]


def add_one_job(session: Session, content: str, styles: Sequence[str], request: JobRequest,
                style_weights: Sequence[float] | None = None) -> JobAdded:
    """One job of `content` in the blend of `styles` (image references); an identical job is
    found instead of duplicated."""
    from db.images import find_image
    from db.jobs import add_job

    params = canonical_params(request.method, request.params)
    job, created = add_job(
        session,
        content_id=find_image(session, content, role="content").id,
        style_ids=[find_image(session, ref, role="style").id for ref in styles],
        style_weights=style_weights or None,
        method=request.method,
        params=params,
        priority=request.priority,
        max_attempts=request.max_attempts,
        content_role=content_role(request.method),
    )
    session.flush()
    return JobAdded(job.id, created)


def add_job_matrix(session: Session, contents: Iterable[str], styles: Iterable[str], request: JobRequest) -> JobsAdded:
    """One job per (content, style) pair of the selectors (`tag:NAME` or an image reference).
    Idempotent: a second call creates only what is missing."""
    from db.jobs import add_job

    params = canonical_params(request.method, request.params)
    role = content_role(request.method)
    content_images = _unique(img for sel in contents for img in select_images(session, sel, role))
    style_images = _unique(img for sel in styles for img in select_images(session, sel, "style"))
    results = [
        add_job(session, content_id=c.id, style_ids=[s.id], method=request.method, params=params,
                priority=request.priority, max_attempts=request.max_attempts, content_role=role)
        for c in content_images
        for s in style_images
    ]
    session.flush()
    return JobsAdded([job.id for job, _ in results], sum(1 for _, created in results if created),
                     len(content_images), len(style_images))


def _unique(images: Iterable[Image]) -> list[Image]:
    seen: dict[int, Image] = {}
    for image in images:
        seen.setdefault(image.id, image)
    return list(seen.values())

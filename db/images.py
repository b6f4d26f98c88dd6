"""Registering and finding images.

Images are identified by the sha256 of their bytes, so registering the same file twice
(even under another name, or from two processes at once) yields one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import InvalidRequest, NotFound
from db.models import Image, ImageRole, ImageTag

_HEX = re.compile(r"^[0-9a-f]{6,64}$")
MAX_TAG_LENGTH = 100


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Tags are compared case-insensitively; store them lower-case, trimmed and unique."""
    cleaned: list[str] = []
    for tag in tags:
        value = tag.strip().lower()
        if not value or len(value) > MAX_TAG_LENGTH:
            raise InvalidRequest(f"invalid tag {tag!r}: tags are 1 to {MAX_TAG_LENGTH} characters")
        if value not in cleaned:
            cleaned.append(value)
    return sorted(cleaned)


def image_by_sha(session: Session, sha256: str) -> Image | None:
    return session.scalar(select(Image).where(Image.sha256 == sha256))


def register_image(
    session: Session,
    *,
    sha256: str,
    role: str,
    uri: str,
    width: int,
    height: int,
    format: str,
    bytes: int,
    title: str | None = None,
    artist: str | None = None,
    year: int | None = None,
    license: str | None = None,
    tags: Iterable[str] = (),
    source_name: str | None = None,
    fps: float | None = None,
    frames: int | None = None,
    duration_s: float | None = None,
) -> tuple[Image, bool]:
    """Insert an image unless its sha256 is known; returns (image, created)."""
    if role not in ImageRole.__members__.values():
        raise InvalidRequest(f"invalid role {role!r}: expected one of {', '.join(ImageRole)}")
    existing = image_by_sha(session, sha256)
    if existing is not None:
        return existing, False
    image = Image(
        sha256=sha256,
        role=role,
        uri=uri,
        width=width,
        height=height,
        format=format,
        bytes=bytes,
        title=title,
        artist=artist,
        year=year,
        license=license,
        source_name=source_name,
        fps=fps,
        frames=frames,
        duration_s=duration_s,
        tags=[ImageTag(tag=t) for t in normalize_tags(tags)],
    )
    try:
        with session.begin_nested():
            session.add(image)
    except IntegrityError:
        # Another process registered the same bytes between our check and our insert.
        winner = image_by_sha(session, sha256)
        if winner is None:
            raise
        return winner, False
    return image, True


def find_image(session: Session, ref: str | int) -> Image:
    """Resolve what a user typed: an id, a sha256 (or a unique prefix of 6+ hex digits),
    a title, or the original file name."""
    text = str(ref).strip()
    if text.isdigit():
        image = session.get(Image, int(text))
        if image is not None:
            return image
    candidates: list[Image] = []
    if _HEX.match(text.lower()):
        candidates = list(session.scalars(select(Image).where(Image.sha256.startswith(text.lower())).limit(2)))
    if not candidates:
        lowered = text.lower()
        candidates = list(
            session.scalars(
                select(Image)
                .where(or_(func.lower(Image.title) == lowered, func.lower(Image.source_name) == lowered))
                .limit(2)
            )
        )
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise NotFound(f"image {text!r} is ambiguous: use its id or a longer sha256 prefix")
    raise NotFound(f"no image matches {text!r} (expected an id, a sha256 prefix, a title or a file name)")


def images_with_tag(session: Session, tag: str, *, role: str | None = None) -> list[Image]:
    """Images carrying `tag`, oldest first (a stable order keeps job matrices reproducible)."""
    query = select(Image).join(ImageTag).where(ImageTag.tag == normalize_tags([tag])[0]).order_by(Image.id)
    if role is not None:
        query = query.where(Image.role == role)
    return list(session.scalars(query))

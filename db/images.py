"""Registering and finding images.

Images are identified by the sha256 of their bytes, so registering the same file twice
(even under another name, or from two processes at once) yields one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import InvalidRequest, NotFound
from db.models import Image, ImageRole, ImageTag

MAX_ID = 2**31 - 1  # PostgreSQL INTEGER keys; a larger number can only be a title or a hash
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


def check_image_fields(**fields: str | None) -> None:
    """Refuse text longer than its catalog column (title, artist, license, source_name), before
    anything is stored: PostgreSQL would refuse the row only after the original was uploaded."""
    for name, value in fields.items():
        limit = Image.__table__.c[name].type.length
        if value is not None and limit is not None and len(value) > limit:
            raise InvalidRequest(f"--{name.replace('_', '-')} is {len(value)} characters long; at most {limit} fit")


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
    check_image_fields(title=title, artist=artist, license=license, source_name=source_name)
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


def find_image(session: Session, ref: str | int, *, role: str | None = None) -> Image:
    """Resolve what a user typed to one image.

    In order: an id; a sha256 or a unique prefix of it (6+ hex digits); then the title or
    original file name, matched case-insensitively with `-`, `_` and spaces alike and the
    file's suffix optional: exactly, then as a prefix, then as a substring; a path is also
    tried by its file name. The first step that finds anything decides; several candidates
    there (of `role`, when given and some have it) are an error that names them.
    """
    text = str(ref).strip()
    if text.isdigit() and 1 <= int(text) <= MAX_ID:
        image = session.get(Image, int(text))
        if image is not None:
            return image
    if _HEX.match(text.lower()):
        by_sha = list(session.scalars(select(Image).where(Image.sha256.startswith(text.lower())).limit(MAX_CANDIDATES)))
        if by_sha:
            return _one(text, by_sha, role)
    # A path (the one just given to `catalog add`, say) names its file: match its file name too.
    file_name = re.split(r"[\\/]", text.rstrip("/\\"))[-1]
    wanted_keys = list(dict.fromkeys(key for key in (_name_key(text), _name_key(file_name)) if key))
    names = session.execute(select(Image.id, Image.title, Image.source_name, Image.role)).all() if wanted_keys else []
    for wanted in wanted_keys:
        for matches in (_exact, _prefix, _substring):
            ids = [row.id for row in names if any(matches(key, wanted) for key in _keys(row.title, row.source_name))]
            if ids:
                found = list(session.scalars(select(Image).where(Image.id.in_(ids[:MAX_CANDIDATES])).order_by(Image.id)))
                return _one(text, found, role, total=len(ids))
    raise NotFound(f"no image matches {text!r} (expected an id, a sha256 prefix, or part of a title or file name; "
                   "`atelier catalog ls` lists them)")


MAX_CANDIDATES = 20


def _one(text: str, candidates: list[Image], role: str | None, total: int | None = None) -> Image:
    if role is not None and len(candidates) > 1:
        of_role = [image for image in candidates if image.role == role]
        candidates = of_role or candidates
        total = len(candidates) if of_role else total
    if len(candidates) == 1:
        return candidates[0]
    shown = ", ".join(f"{image.id} ({image.title or image.source_name}, {image.role})" for image in candidates[:5])
    more = (total or len(candidates)) - min(5, len(candidates))
    raise NotFound(f"image {text!r} is ambiguous: it matches {shown}{f' and {more} more' if more > 0 else ''}; "
                   "use an id or a longer name")


def _name_key(text: str | None) -> str:
    """A name as compared: lower case, with runs of `-`, `_`, `.` and spaces as one space."""
    return " ".join(re.split(r"[\s_\-.]+", (text or "").lower())).strip()


def _keys(title: str | None, source_name: str | None) -> set[str]:
    stem = source_name.rsplit(".", 1)[0] if source_name and "." in source_name else source_name
    return {key for key in (_name_key(title), _name_key(source_name), _name_key(stem)) if key}


def _exact(key: str, wanted: str) -> bool:
    return key == wanted


def _prefix(key: str, wanted: str) -> bool:
    return key.startswith(wanted)


def _substring(key: str, wanted: str) -> bool:
    return wanted in key


def images_with_tag(session: Session, tag: str, *, role: str | None = None) -> list[Image]:
    """Images carrying `tag`, oldest first (a stable order keeps job matrices reproducible)."""
    query = select(Image).join(ImageTag).where(ImageTag.tag == normalize_tags([tag])[0]).order_by(Image.id)
    if role is not None:
        query = query.where(Image.role == role)
    return list(session.scalars(query))

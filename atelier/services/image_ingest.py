"""Registering images and clips: which files a request names, how each is checked, stored
and recorded, and what happened to each (`atelier catalog add`, `atelier demo`).

A file is validated before anything is written for it; known bytes are never stored twice,
but a known image whose stored original went missing or corrupt is uploaded again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from atelier.services.errors import BadInput

if TYPE_CHECKING:
    from db.models import Image
    from db.session import Catalog
    from storage import ArtifactStore

ROLES = ("content", "style", "video")
# Suffixes picked up when a folder is given; files named explicitly are always tried.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
_FORMAT_SUFFIXES = {"JPEG": ".jpg", "TIFF": ".tif"}

Status = Literal["added", "duplicate", "restored", "invalid", "skipped"]
STATUSES: tuple[Status, ...] = ("added", "duplicate", "restored", "invalid", "skipped")


@dataclass(frozen=True)
class ImageRequest:
    """What every file of one registration gets: its role and descriptive fields."""

    role: str
    title: str | None = None
    artist: str | None = None
    year: int | None = None
    license: str | None = None
    tags: Sequence[str] = field(default_factory=tuple)


@dataclass
class AddOutcome:
    """What happened to one file."""

    path: str
    status: Status
    image_id: int | None = None
    message: str = ""


def collect_paths(paths: Sequence[Path], role: str = "content") -> tuple[list[Path], list[AddOutcome]]:
    """Files as given, and the image (or video) files inside folders (recursively, sorted);
    also what a folder held that was skipped, and why (hidden files and folders, other suffixes)."""
    suffixes, kind = (VIDEO_SUFFIXES, "a video") if role == "video" else (IMAGE_SUFFIXES, "an image")
    found: list[Path] = []
    skipped: list[AddOutcome] = []
    for path in paths:
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if not p.is_file():
                    continue
                if any(part.startswith(".") for part in p.relative_to(path).parts):
                    skipped.append(AddOutcome(str(p), "skipped", message="hidden (its name or a folder's starts with '.')"))
                elif p.suffix.lower() not in suffixes:
                    skipped.append(AddOutcome(str(p), "skipped", message=f"not {kind} suffix ({p.suffix or 'none'}); "
                                              "name the file itself to try it"))
                else:
                    found.append(p)
        elif path.is_file():
            found.append(path)
        else:
            raise BadInput(f"{path}: no such file or folder")
    return found, skipped


@dataclass(frozen=True)
class IngestPlan:
    """A checked request: the files to register and what was skipped in folders."""

    request: ImageRequest
    files: list[Path]
    skipped: list[AddOutcome]
    tags: list[str]


def plan_images(paths: Sequence[Path], request: ImageRequest) -> IngestPlan:
    """Check the whole request before anything is opened or stored: the role, the paths, the
    title (one file only), the tags and the lengths of the text fields."""
    from db.images import check_image_fields, normalize_tags

    if request.role not in ROLES:
        raise BadInput(f"--role {request.role!r}: expected content, style or video")
    files, skipped = collect_paths(paths, request.role)
    if not files:
        kind = "video" if request.role == "video" else "image"
        raise BadInput(f"no {kind} files found in " + ", ".join(str(p) for p in paths)
                       + (f" ({len(skipped)} other files skipped)" if skipped else ""))
    if request.title is not None and len(files) > 1:
        raise BadInput(f"--title names one image, but {len(files)} files were given")
    tags = normalize_tags(request.tags)
    check_image_fields(title=request.title, artist=request.artist, license=request.license)
    return IngestPlan(request, files, skipped, tags)


def add_images(catalog: Catalog, store: ArtifactStore, plan: IngestPlan, *, max_pixels: int) -> list[AddOutcome]:
    """Register each planned file: one outcome per file, then the skipped files of folders.
    An invalid file is an outcome too (nothing is written for it); the others go on."""
    added = [_add_one(catalog, store, path, plan.request, plan.tags, max_pixels) for path in plan.files]
    return added + plan.skipped


def _add_one(catalog: Catalog, store: ArtifactStore, path: Path, request: ImageRequest, tags: list[str],
             max_pixels: int) -> AddOutcome:
    from db.images import image_by_sha, register_image
    from style_engine.errors import InvalidInputError
    from style_engine.images import image_info

    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    with catalog.reader() as session:
        existing = image_by_sha(session, sha256)
    if existing is not None:
        if (existing.role == "video") != (request.role == "video"):
            return AddOutcome(str(path), "invalid", existing.id, _role_clash(path, existing.role, existing.id))
        return _check_duplicate(catalog, store, path, data, existing)
    role = request.role
    try:
        if role == "video":
            media = _video_media(path)
        else:
            info = image_info(data, name=str(path), max_pixels=max_pixels)
            media = {"width": info.width, "height": info.height, "format": info.format}
    except InvalidInputError as exc:
        named_video = path.suffix.lower() in VIDEO_SUFFIXES
        hint = "; it looks like a video: add it with --role video" if named_video and role != "video" else ""
        return AddOutcome(str(path), "invalid", message=f"{exc}{hint}")
    fmt = media["format"]
    stored = store.put_bytes(data, suffix=_FORMAT_SUFFIXES.get(fmt, f".{fmt.lower()}"))
    with catalog.session() as session:
        image, created = register_image(
            session, sha256=sha256, role=role, uri=stored.uri, bytes=len(data), title=request.title or path.stem,
            artist=request.artist, year=request.year, license=request.license, tags=tags, source_name=path.name,
            **media,
        )
        session.flush()
        described = f"{role}, {media['width']}x{media['height']} {fmt}"
        if role == "video":
            described += f", {media['frames']} frames at {media['fps']:g} fps ({media['duration_s']:.1f} s)"
        outcome = AddOutcome(str(path), "added" if created else "duplicate", image.id, described)
    return outcome


def _role_clash(path: Path, known_role: str, image_id: int) -> str:
    """Known bytes asked for as the other kind (a picture as a video, or a video as a picture):
    the same file cannot be both, whatever its name says."""
    if known_role == "video":
        return f"{path}: already in the catalog as video {image_id}; a video cannot be a content or style image"
    return f"{path}: already in the catalog as {known_role} image {image_id}, and it is not a video (it is a picture)"


def _video_media(path: Path) -> dict[str, object]:
    """Validate a clip as the video method will decode it, and describe it for the catalog."""
    from tasks.video_io import probe_video

    info = probe_video(path)
    return {"width": info.width, "height": info.height, "format": path.suffix.lstrip(".").upper() or "VIDEO",
            "fps": info.fps, "frames": info.frames, "duration_s": info.duration}


def _check_duplicate(catalog: Catalog, store: ArtifactStore, path: Path, data: bytes, existing: Image) -> AddOutcome:
    """Known bytes: skip, but first make sure the store still holds an intact original."""
    from db.models import Image

    if store.verify(existing.uri, existing.sha256, deep=True):
        return AddOutcome(str(path), "duplicate", existing.id, f"already in the catalog as image {existing.id}")
    suffix = Path(existing.uri).suffix or _FORMAT_SUFFIXES.get(existing.format, f".{existing.format.lower()}")
    stored = store.put_bytes(data, suffix=suffix)
    if not store.verify(stored.uri, existing.sha256, deep=True):
        from storage.errors import ChecksumMismatch

        raise ChecksumMismatch(f"{stored.uri}: the store still holds different bytes after re-uploading {path}")
    if stored.uri != existing.uri:
        with catalog.session() as session:
            session.get(Image, existing.id).uri = stored.uri
    return AddOutcome(str(path), "restored", existing.id,
                      f"image {existing.id} was already in the catalog; its stored original was missing or "
                      "corrupt and has been uploaded again")

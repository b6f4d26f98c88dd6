"""`atelier catalog`: register images (uploading their originals) and browse them."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from atelier.commands.catalog_common import (
    ArtistOpt,
    JsonOpt,
    LimitOpt,
    SinceOpt,
    SortOpt,
    TagOpt,
    TitleOpt,
    UntilOpt,
    make_filters,
    opened_catalog,
    print_json,
    print_record,
    print_rows,
    read_session,
)
from atelier.console import USER_ERROR_EXIT, console, err_console, fail, user_errors
from atelier.settings import get_settings

if TYPE_CHECKING:
    from db.models import Image
    from db.session import Catalog
    from storage import ArtifactStore

catalog_app = typer.Typer(help="Images: register, list, show.", no_args_is_help=True)

# Suffixes picked up when a folder is given; files named explicitly are always tried.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
_FORMAT_SUFFIXES = {"JPEG": ".jpg", "TIFF": ".tif"}


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@dataclass
class AddOutcome:
    path: str
    status: Literal["added", "duplicate", "restored", "invalid", "skipped"]
    image_id: int | None = None
    message: str = ""


def collect_paths(paths: list[Path], role: str = "content") -> tuple[list[Path], list[AddOutcome]]:
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
            raise fail(f"{path}: no such file or folder")
    return found, skipped


@catalog_app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Image (or video) files, or folders of them.")],
    role: Annotated[str, typer.Option(help="content, style or video.")],
    title: Annotated[str | None, typer.Option(help="Title (one file only; default: the file name).")] = None,
    artist: Annotated[str | None, typer.Option()] = None,
    year: Annotated[int | None, typer.Option()] = None,
    license: Annotated[str | None, typer.Option("--license")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register images: validate each, upload its original to the store, record it.

    A duplicate (same bytes) is reported and skipped; if its stored original is missing or
    corrupt, it is uploaded again. An invalid image is reported and nothing is written for
    it. Exit code 2 if any input was invalid.
    """
    if role not in ("content", "style", "video"):
        raise fail(f"--role {role!r}: expected content, style or video")
    with user_errors():
        from db.images import check_image_fields, normalize_tags
        from storage import open_store

        kind = "video" if role == "video" else "image"
        files, skipped = collect_paths(paths, role)
        if not files:
            raise fail(f"no {kind} files found in " + ", ".join(str(p) for p in paths)
                       + (f" ({len(skipped)} other files skipped)" if skipped else ""))
        if title is not None and len(files) > 1:
            raise fail(f"--title names one image, but {len(files)} files were given")
        tags = normalize_tags(tag or [])
        check_image_fields(title=title, artist=artist, license=license)
        settings = get_settings()
        store = open_store(settings.store_url, endpoint_url=settings.s3_endpoint_url)
        with opened_catalog(create=True) as catalog:
            outcomes = [
                _add_one(catalog, store, path, role=role, title=title, artist=artist, year=year,
                         license=license, tags=tags)
                for path in files
            ]
    _report(outcomes + skipped, as_json)
    if any(o.status == "invalid" for o in outcomes):
        raise typer.Exit(USER_ERROR_EXIT)


def _add_one(catalog: Catalog, store: ArtifactStore, path: Path, *, role: str, title: str | None,
             artist: str | None, year: int | None, license: str | None, tags: list[str]) -> AddOutcome:
    from db.images import image_by_sha, register_image
    from style_engine.errors import InvalidInputError
    from style_engine.images import image_info

    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    with catalog.reader() as session:
        existing = image_by_sha(session, sha256)
    if existing is not None:
        return _check_duplicate(catalog, store, path, data, existing)
    try:
        if role == "video":
            media = _video_media(path)
        else:
            info = image_info(data, name=str(path), max_pixels=get_settings().max_image_pixels)
            media = {"width": info.width, "height": info.height, "format": info.format}
    except InvalidInputError as exc:
        hint = "; it looks like a video: add it with --role video" if path.suffix.lower() in VIDEO_SUFFIXES else ""
        return AddOutcome(str(path), "invalid", message=f"{exc}{hint}")
    fmt = media["format"]
    stored = store.put_bytes(data, suffix=_FORMAT_SUFFIXES.get(fmt, f".{fmt.lower()}"))
    with catalog.session() as session:
        image, created = register_image(
            session, sha256=sha256, role=role, uri=stored.uri, bytes=len(data), title=title or path.stem,
            artist=artist, year=year, license=license, tags=tags, source_name=path.name, **media,
        )
        session.flush()
        described = f"{role}, {media['width']}x{media['height']} {fmt}"
        if role == "video":
            described += f", {media['frames']} frames at {media['fps']:g} fps ({media['duration_s']:.1f} s)"
        outcome = AddOutcome(str(path), "added" if created else "duplicate", image.id, described)
    return outcome


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


def _report(outcomes: list[AddOutcome], as_json: bool) -> None:
    if as_json:
        print_json([asdict(o) for o in outcomes])
        return
    for o in outcomes:
        if o.status == "invalid":
            # The engine's message already names the file.
            err_console.print(f"[red]invalid:[/] {o.message}", highlight=False, soft_wrap=True)
        elif o.status == "added":
            console.print(f"added image {o.image_id}: {o.path} ({o.message})", highlight=False, soft_wrap=True)
        else:
            console.print(f"{o.status} {o.path}: {o.message}", highlight=False, soft_wrap=True)
    counts = {s: sum(1 for o in outcomes if o.status == s)
              for s in ("added", "duplicate", "restored", "invalid", "skipped")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do")


IMAGE_COLUMNS = {"id": "id", "role": "role", "title": "title", "artist": "artist", "year": "year",
                 "size": lambda r: f"{r['width']}x{r['height']}", "tags": "tags", "sha256": lambda r: r["sha256"][:8]}


@catalog_app.command("ls")
def ls(
    role: Annotated[str | None, typer.Option(help="content, style or video.")] = None,
    tag: TagOpt = None,
    artist: ArtistOpt = None,
    title: TitleOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    sort: SortOpt = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List images (sort keys: id, created, title, artist, year, bytes)."""
    with user_errors():
        from db.queries import list_images

        filters = make_filters(role=role, tags=tag, artist=artist, title=title, since=since, until=until,
                               sort=sort, limit=limit)
        with read_session() as session:
            rows = list_images(session, filters)
    print_rows(rows, IMAGE_COLUMNS, as_json=as_json, empty="no images match")


@catalog_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Image id, sha256 (prefix), title or file name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one image with its metadata and how many jobs use it."""
    with user_errors():
        from db.queries import show_image

        with read_session() as session:
            record = show_image(session, ref)
    print_record(record, as_json=as_json)

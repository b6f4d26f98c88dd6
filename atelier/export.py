"""Copying artworks out of the store into a folder people can browse.

A plain function over a catalog session and a store, so that the CLI (`atelier artworks
export`) and a later web page share it. File names are readable and stable,
`{id}-{content}-x-{style}.png`, built from titles reduced to safe words, never from raw user
text; a JSON sidecar lists what made each file. A folder is exported into again and again (a
filter at a time), so the sidecar is merged by artwork id, never replaced: it must keep
describing the files already there.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from atelier.services.errors import BadInput
from storage.base import ArtifactStore
from storage.files import atomic_path, ensure_folder, file_digest

SIDECAR = "artworks.json"
NAME_WORDS = 40  # characters of each title in a file name
VIDEO_SUFFIX = ".mp4"
POSTER_SUFFIX = ".poster.png"


@dataclass(frozen=True)
class Exported:
    """One written file and what made it (a sidecar entry); `poster` is a video's still."""

    file: str
    artwork_id: int
    job_id: int
    run_id: int
    method: str
    params: dict[str, Any]
    content: dict[str, Any]
    styles: list[dict[str, Any]]
    sha256: str
    width: int | None
    height: int | None
    created_at: str
    written: bool
    poster: str | None = None


def slug(text: str | None, fallback: str) -> str:
    """`text` as lower-case ASCII words joined by `-`, at most NAME_WORDS characters."""
    words = re.findall(r"[a-z0-9]+", (text or "").lower())
    joined = "-".join(words)[:NAME_WORDS].strip("-")
    return joined or fallback


def export_name(artwork: Mapping[str, Any], suffix: str = ".png") -> str:
    """`{id}-{content}-x-{style}[+{style}...]{suffix}` for an artwork of `db.queries`."""
    content = slug(artwork["content"]["title"], f"image-{artwork['content']['id']}")
    styles = "+".join(slug(s["title"], f"image-{s['id']}") for s in artwork["styles"])
    return f"{artwork['id']}-{content}-x-{styles}{suffix}"


def export_artworks(
    store: ArtifactStore, artworks: Sequence[Mapping[str, Any]], folder: Path, *, quality: int | None = None,
    suffix: str = ".png",
) -> list[Exported]:
    """Write each artwork to `folder` (verified against its sha256) and merge them into the
    sidecar; returns one entry per artwork, and writes nothing at all when there are none.

    Pictures: `.png` is the stored master, copied byte for byte (its text chunks keep the
    provenance); `.jpg`, `.webp` or `.tiff` are re-encoded (at `quality` for the lossy two) with
    the provenance in EXIF or the TIFF ImageDescription. Videos are their MP4, byte for byte,
    with the poster beside it, whatever `suffix` says. A file already there with the same bytes
    is left as it is, so an export can be rerun. Each file is written whole or not at all.
    """
    if not artworks:
        return []
    ensure_folder(folder)
    sidecar = _read_sidecar(folder / SIDECAR)  # an unreadable sidecar stops the export before any file
    entries = []
    for artwork in artworks:
        if _is_video(artwork):
            target = folder / export_name(artwork, VIDEO_SUFFIX)
            written = _copy(store, artwork["uri"], artwork["sha256"], target)
            poster = _export_poster(store, artwork, folder)
        else:
            target = folder / export_name(artwork, suffix)
            written = (_copy(store, artwork["uri"], artwork["sha256"], target) if suffix == ".png"
                       else _reencode(store, artwork, target, quality))
            poster = None
        entries.append(Exported(
            file=target.name, artwork_id=artwork["id"], job_id=artwork["job_id"], run_id=artwork["run_id"],
            method=artwork["method"], params=artwork["params"], content=dict(artwork["content"]),
            styles=[dict(s) for s in artwork["styles"]], sha256=artwork["sha256"], width=artwork["width"],
            height=artwork["height"], created_at=_iso(artwork["created_at"]), written=written, poster=poster,
        ))
    merged = _merged(sidecar, [{k: v for k, v in asdict(entry).items() if k != "written"} for entry in entries])
    with atomic_path(folder / SIDECAR) as temp:
        temp.write_text(json.dumps(merged, indent=2, ensure_ascii=False))
    return entries


def _is_video(artwork: Mapping[str, Any]) -> bool:
    """Whether the stored output is a clip: content keys keep the suffix the output was stored with."""
    return Path(artwork["uri"]).suffix.lower() == VIDEO_SUFFIX


def _copy(store: ArtifactStore, uri: str, sha256: str | None, target: Path) -> bool:
    """Stream a stored object into `target` (verified, atomic); False when it already held those bytes."""
    if sha256 is not None and target.is_file() and file_digest(target)[0] == sha256:
        return False
    store.get_file(uri, target, sha256=sha256)
    return True


def _export_poster(store: ArtifactStore, artwork: Mapping[str, Any], folder: Path) -> str | None:
    """A video's poster (its stored thumbnail) beside it, as `{name}.poster.png`."""
    uri = artwork["related_uris"].get("thumbnail")
    if uri is None:
        return None
    target = folder / export_name(artwork, POSTER_SUFFIX)
    _copy(store, uri, Path(uri).stem, target)  # content keys are named by their sha256
    return target.name


def _reencode(store: ArtifactStore, artwork: Mapping[str, Any], target: Path, quality: int | None) -> bool:
    """Decode the stored PNG once, from a file, and write it in `target`'s format with its provenance."""
    from PIL import Image

    from style_engine.images import DEFAULT_QUALITY, save_image

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export.") as scratch:
        master = store.get_file(artwork["uri"], Path(scratch) / "master.png", sha256=artwork["sha256"])
        encoded = Path(scratch) / f"encoded{target.suffix}"
        with Image.open(master) as image:
            metadata = dict(getattr(image, "text", {}) or {})
            save_image(image.convert("RGB"), encoded, metadata, quality=quality or DEFAULT_QUALITY)
        if target.is_file() and filecmp.cmp(encoded, target, shallow=False):
            return False
        with atomic_path(target) as temp:
            shutil.copyfile(encoded, temp)
    return True


def _read_sidecar(path: Path) -> list[dict[str, Any]]:
    """The entries of an existing sidecar ([] when there is none); BadInput when it is not one,
    since replacing it would lose the description of the files already there."""
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read this sidecar ({exc}); move it away to export into this folder") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "artwork_id" in e for e in entries):
        raise BadInput(f"{path}: not a list of artworks; move it away to export into this folder")
    return entries


def _merged(existing: list[dict[str, Any]], exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The existing entries, each replaced by its re-export if any, then the artworks new to the folder."""
    fresh = {entry["artwork_id"]: entry for entry in exported}
    kept = [fresh.pop(entry["artwork_id"], entry) for entry in existing]
    return kept + [entry for entry in exported if entry["artwork_id"] in fresh]


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)

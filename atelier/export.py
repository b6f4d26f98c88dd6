"""Copying artworks out of the store into a folder people can browse.

A plain function over a catalog session and a store, so that the CLI (`atelier artworks
export`) and a later web page share it. File names are readable and stable,
`{id}-{content}-x-{style}.png`, built from titles reduced to safe words, never from raw user
text; a JSON sidecar lists what made each file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from storage.base import ArtifactStore

SIDECAR = "artworks.json"
NAME_WORDS = 40  # characters of each title in a file name


@dataclass(frozen=True)
class Exported:
    """One written file and what made it (a sidecar entry)."""

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
    """Write each artwork to `folder` (verified against its sha256) and the sidecar; returns
    one entry per artwork. PNG is copied byte for byte (its text chunks keep the provenance);
    `.jpg` or `.webp` are re-encoded at `quality` with the provenance in EXIF. A file already
    there with the same bytes is left as it is, so an export can be rerun.
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for artwork in artworks:
        data = store.get_bytes(artwork["uri"], sha256=artwork["sha256"])
        if suffix != ".png":
            data = _reencode(data, suffix, quality)
        target = folder / export_name(artwork, suffix)
        written = not (target.is_file() and target.read_bytes() == data)
        if written:
            _write_atomically(target, data)
        entries.append(Exported(
            file=target.name, artwork_id=artwork["id"], job_id=artwork["job_id"], run_id=artwork["run_id"],
            method=artwork["method"], params=artwork["params"], content=dict(artwork["content"]),
            styles=[dict(s) for s in artwork["styles"]], sha256=artwork["sha256"], width=artwork["width"],
            height=artwork["height"], created_at=_iso(artwork["created_at"]), written=written,
        ))
    sidecar = [{k: v for k, v in asdict(entry).items() if k != "written"} for entry in entries]
    _write_atomically(folder / SIDECAR, json.dumps(sidecar, indent=2, ensure_ascii=False).encode())
    return entries


def _reencode(png: bytes, suffix: str, quality: int | None) -> bytes:
    import io

    from PIL import Image

    from style_engine.images import DEFAULT_QUALITY, save_image

    image = Image.open(io.BytesIO(png))
    metadata = dict(getattr(image, "text", {}) or {})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"artwork{suffix}"
        save_image(image.convert("RGB"), path, metadata, quality=quality or DEFAULT_QUALITY)
        return path.read_bytes()


def _write_atomically(target: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)

"""Serving stored pictures to the browser through the store, never through a path from a request.

Pages name pictures by catalog id; the URI comes from the catalog. S3 objects are answered
with a redirect to a presigned URL (the bytes never pass through the app). Local objects are
streamed, and only when the file resolves to a path inside the store's root: a catalog row
whose URI points elsewhere (another store, a symlink out, a crafted key) is refused, and so
is a file whose bytes are not the recorded ones.
"""

from __future__ import annotations

import mimetypes
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from storage import InvalidObjectName
from storage.base import ArtifactStore
from storage.local import LocalStore

PRESIGN_SECONDS = 3600
# Objects are content-addressed: the bytes behind a URL never change.
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def media_type(image: Mapping[str, Any]) -> str:
    """The Content-Type of a registered image or clip, from the format the catalog recorded
    (a clip's is its file suffix: MP4, MOV, WEBM...)."""
    if image["role"] == "video":
        return mimetypes.guess_type(f"clip.{image['format'].lower()}")[0] or "application/octet-stream"
    return f"image/{image['format'].lower()}"


def is_video(content_type: str | None) -> bool:
    """Whether a stored object plays in a <video> element rather than showing in an <img>."""
    return bool(content_type and content_type.startswith("video/"))


class OutsideStore(LookupError):
    """The catalog names an object that is not inside this app's store, or not intact there."""


def local_path(store: LocalStore, uri: str) -> Path:
    """The file behind `uri`, refused unless it exists strictly inside the local store's root."""
    root = store.root
    try:
        path = store.path_for_uri(uri).resolve()
    except InvalidObjectName as exc:
        raise OutsideStore(f"object is not in this store: {exc}") from None
    if not path.is_relative_to(root) or path == root:
        raise OutsideStore("object path leaves the store's root")
    if not path.is_file():
        raise OutsideStore("object missing from the store")
    return path


class VerifiedFiles:
    """The local files whose sha256 was checked, remembered by what a change to the file changes.

    A video player seeks with many Range requests, and hashing a 45 MB clip for each took 40 ms
    for 2 bytes. A file is hashed once; it is hashed again only when its inode, size,
    modification time or status-change time differ (the last changes on every write, even one
    that puts the modification time back).
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.hashed = 0  # files hashed so far (a figure for tests and benchmarks)
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._lock = threading.Lock()

    def intact(self, store: LocalStore, uri: str, sha256: str, path: Path) -> bool:
        """Whether the file at `path` (the object `uri`) holds the bytes whose digest is `sha256`."""
        status = path.stat()
        key = (str(path), sha256, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
            self.hashed += 1
        if not store.verify(uri, sha256):
            return False
        with self._lock:
            self._seen[key] = None
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
        return True


class StoredFile(FileResponse):
    """A FileResponse that ignores a Range in a unit other than bytes (RFC 9110 section 14.2:
    a server ignores what it does not understand, and sends the whole file with a 200), where
    Starlette answers 400."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        requested = Headers(scope=scope).get("range")
        if requested is not None and requested.split("=", 1)[0].strip().lower() != "bytes":
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]}
        await super().__call__(scope, receive, send)


def verified_path(store: LocalStore, verified: VerifiedFiles, uri: str, sha256: str) -> Path:
    """The local file of `uri`, inside the store's root and holding the recorded bytes."""
    path = local_path(store, uri)
    if not verified.intact(store, uri, sha256, path):
        raise OutsideStore("the stored copy is corrupt (its sha256 differs): add the original file again")
    return path


def object_response(
    store: ArtifactStore, verified: VerifiedFiles, uri: str, sha256: str, content_type: str | None,
    download_name: str | None,
) -> Response:
    """The stored object: a presigned redirect (S3) or the file, streamed (local folder) after
    checking its bytes against `sha256` (once: see VerifiedFiles), so a corrupt copy is refused
    instead of shown."""
    if isinstance(store, LocalStore):
        path = verified_path(store, verified, uri, sha256)
        disposition = "attachment" if download_name else "inline"
        return StoredFile(path, media_type=content_type, filename=download_name, content_disposition_type=disposition,
                          headers=IMMUTABLE)
    try:
        url = store.url_for(uri, expires=PRESIGN_SECONDS)
    except InvalidObjectName as exc:
        raise OutsideStore(f"object is not in this store: {exc}") from None
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "private, max-age=600"})

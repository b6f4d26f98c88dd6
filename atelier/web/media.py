"""Serving stored pictures to the browser through the store, never through a path from a request.

Pages name pictures by catalog id; the URI comes from the catalog. S3 objects are answered
with a redirect to a presigned URL (the bytes never pass through the app). Local objects are
streamed, and only when the file resolves to a path inside the store's root: a catalog row
whose URI points elsewhere (another store, a symlink out, a crafted key) is refused.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse, RedirectResponse, Response

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


def object_response(
    store: ArtifactStore, uri: str, sha256: str, content_type: str | None, download_name: str | None
) -> Response:
    """The stored object: a presigned redirect (S3) or the file, streamed (local folder) after
    checking its bytes against `sha256`, so a corrupt copy is refused instead of shown."""
    if isinstance(store, LocalStore):
        path = local_path(store, uri)
        if not store.verify(uri, sha256):
            raise OutsideStore("the stored copy is corrupt (its sha256 differs): add the original file again")
        disposition = "attachment" if download_name else "inline"
        return FileResponse(path, media_type=content_type, filename=download_name, content_disposition_type=disposition,
                            headers=IMMUTABLE)
    try:
        url = store.url_for(uri, expires=PRESIGN_SECONDS)
    except InvalidObjectName as exc:
        raise OutsideStore(f"object is not in this store: {exc}") from None
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "private, max-age=600"})

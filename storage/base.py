"""The artifact store interface shared by the S3 and local-folder backends.

Callers (tasks, the CLI, the catalog commands) depend on this Protocol only, so a
deployment switches backends by changing `ATELIER_STORE_URL` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storage.errors import InvalidObjectName
from storage.keys import digest_of_key


@dataclass(frozen=True)
class StoredObject:
    """What the catalog records about an artifact: enough to find it and check it later."""

    uri: str
    key: str
    sha256: str
    size: int
    content_type: str


class ArtifactStore(Protocol):
    """Content-addressed blob storage that verifies every byte it hands back."""

    base_uri: str

    def put_bytes(self, data: bytes, *, suffix: str, content_type: str | None = None) -> StoredObject:
        """Store `data` (idempotent; a corrupt copy under the same key is replaced)."""
        ...

    def put_file(self, path: str | Path, *, suffix: str, content_type: str | None = None) -> StoredObject:
        """Store a file without loading it into memory (idempotent, like `put_bytes`)."""
        ...

    def get_bytes(self, uri: str, *, sha256: str | None = None) -> bytes:
        """The object's bytes, after checking them against the key's digest and `sha256`."""
        ...

    def get_file(self, uri: str, dest: str | Path, *, sha256: str | None = None) -> Path:
        """Stream the object into `dest` atomically; `dest` never holds unverified bytes."""
        ...

    def exists(self, uri: str) -> bool:
        """Whether an object is stored under `uri`."""
        ...

    def verify(self, uri: str, sha256: str, *, deep: bool = False) -> bool:
        """Whether `uri` holds bytes with digest `sha256`; `deep` re-reads them where metadata is cheaper."""
        ...

    def create(self) -> bool:
        """Create the bucket (S3) or folder (local) unless it exists; True when created."""
        ...

    def url_for(self, uri: str, *, expires: int = 3600) -> str:
        """Something a person can open: a presigned GET URL (S3) or a file path (local)."""
        ...

    def uri_for_key(self, key: str) -> str:
        """The URI of a content key in this store."""
        ...

    def key_for_uri(self, uri: str) -> str:
        """The content key of a URI of this store; refuses URIs of other stores and unsafe keys."""
        ...


class ContentKeyedURIs:
    """URI <-> content-key mapping shared by both backends: `<base_uri>/objects/ab/<sha256>.ext`.

    Both directions validate the key, so a URI from elsewhere (or a crafted one) can never
    name a path or an S3 key outside the store.
    """

    base_uri: str

    def uri_for_key(self, key: str) -> str:
        digest_of_key(key)
        return f"{self.base_uri}/{key}"

    def key_for_uri(self, uri: str) -> str:
        key = uri.removeprefix(self.base_uri + "/")
        if key == uri:
            raise InvalidObjectName(f"URI {uri!r} does not belong to the store {self.base_uri}")
        digest_of_key(key)
        return key

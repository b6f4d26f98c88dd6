"""A worker's local copies of input images, named by their sha256.

A batch uses the same few styles over and over; fetching each from S3 for every job
would cost a round trip per job. Content addressing makes the cache trivially correct:
a file whose bytes hash to its name is the right file, whatever wrote it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from storage.base import ArtifactStore


class InputCache:
    """Fetch store objects through a folder of verified local copies."""

    def __init__(self, directory: str | Path, store: ArtifactStore) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.store = store

    def fetch_path(self, uri: str, sha256: str) -> Path:
        """A verified local file holding the object (videos are decoded from a file, not bytes)."""
        self.fetch(uri, sha256)
        return self.directory / sha256[:2] / sha256

    def fetch(self, uri: str, sha256: str) -> bytes:
        """The object's bytes, from the local copy when it is intact, else from the store.

        A damaged local copy is replaced; a damaged stored object raises the store's
        ChecksumMismatch, naming the object, and never enters the cache.
        """
        path = self.directory / sha256[:2] / sha256
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
        self.store.get_file(uri, path, sha256=sha256)
        return path.read_bytes()

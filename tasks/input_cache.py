"""A worker's local copies of input images, named by their sha256.

A batch uses the same few styles over and over; fetching each from S3 for every job
would cost a round trip per job. Content addressing makes the cache trivially correct:
a file whose bytes hash to its name is the right file, whatever wrote it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from storage.base import ArtifactStore
from storage.errors import ChecksumMismatch

logger = logging.getLogger(__name__)


class InputCache:
    """Fetch store objects through a folder of verified local copies."""

    def __init__(self, directory: str | Path, store: ArtifactStore) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.store = store
        self._store_checked: set[str] = set()  # URIs whose stored object this process has checked

    def fetch_path(self, uri: str, sha256: str) -> Path:
        """A verified local file holding the object (videos are decoded from a file, not bytes)."""
        self.fetch(uri, sha256)
        return self.directory / sha256[:2] / sha256

    def fetch(self, uri: str, sha256: str) -> bytes:
        """The object's bytes, from the local copy when it is intact, else from the store.

        A damaged local copy is dropped (with a warning) and fetched again; a damaged stored
        object raises the store's ChecksumMismatch, naming the object, and never enters the cache.
        """
        path = self.directory / sha256[:2] / sha256
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == sha256:
                self._check_stored(uri, sha256, data)
                return data
            logger.warning("input cache: %s does not hash to its name (a damaged copy): dropped, fetching %s again",
                           path, uri)
            path.unlink(missing_ok=True)
        self.store.get_file(uri, path, sha256=sha256)
        self._store_checked.add(uri)
        return path.read_bytes()

    def _check_stored(self, uri: str, sha256: str, data: bytes) -> None:
        """Check the stored object once per process, and mend it from the cached copy when it is damaged.

        A good local copy used to hide a corrupt stored object (a model, say) for as long as it
        lasted; a cache elsewhere then failed on what worked here. The cached bytes hash to the
        catalog's sha256, so they are exactly what the store must hold.
        """
        if uri in self._store_checked:
            return
        if not self.store.verify(uri, sha256):
            logger.warning("%s: the stored object is missing or does not match its sha256; restoring it from the "
                           "local cache", uri)
            restored = self.store.put_bytes(data, suffix=Path(uri).suffix)
            if restored.uri != uri:
                raise ChecksumMismatch(f"{uri}: damaged in the store, and the intact copy is stored as {restored.uri}")
        self._store_checked.add(uri)

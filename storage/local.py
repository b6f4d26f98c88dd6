"""The local-folder backend (`file://path`): the zero-setup default for one machine.

The content address doubles as the checksum, so no sidecar is needed: an object is
intact exactly when its bytes hash to the digest in its own file name.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import BinaryIO

from storage.base import ContentKeyedURIs, StoredObject
from storage.errors import ChecksumMismatch, ObjectNotFound, StorageConfigError, StorageWriteError
from storage.files import file_digest, read_chunks, write_verified
from storage.keys import content_key, digest_of_key, expected_digest, guess_content_type, normalize_suffix


class LocalStore(ContentKeyedURIs):
    """Objects under `root/objects/ab/<sha256><.ext>`, written atomically."""

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.base_uri = self.root.as_uri()
        self._fsync = fsync

    @classmethod
    def from_url(cls, url: str, *, fsync: bool = False) -> LocalStore:
        """`file:///abs/dir` or `file://relative/dir` (relative to the working directory)."""
        path = url.removeprefix("file://")
        if not path:
            raise StorageConfigError(f"store URL {url!r} names no folder: use file://path")
        return cls(path, fsync=fsync)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def create(self) -> bool:
        """Create the store's folder unless it exists; True when created."""
        if self.root.is_dir():
            return False
        try:
            self.root.mkdir(parents=True)
        except OSError as exc:
            raise StorageWriteError(f"cannot create the store folder {self.root}: {exc.strerror or exc}") from exc
        return True

    def path_for_uri(self, uri: str) -> Path:
        """The file behind a URI; always inside `root` because the key is validated."""
        return self.root / self.key_for_uri(uri)

    def put_bytes(self, data: bytes, *, suffix: str, content_type: str | None = None) -> StoredObject:
        sha256 = hashlib.sha256(data).hexdigest()
        return self._put(sha256, len(data), io.BytesIO(data), suffix, content_type)

    def put_file(self, path: str | Path, *, suffix: str, content_type: str | None = None) -> StoredObject:
        source = Path(path)
        sha256, size = file_digest(source)
        with source.open("rb") as stream:
            return self._put(sha256, size, stream, suffix, content_type)

    def _put(self, sha256: str, size: int, stream: BinaryIO, suffix: str, content_type: str | None) -> StoredObject:
        suffix = normalize_suffix(suffix)
        key = content_key(sha256, suffix)
        target = self.root / key
        if not self._holds(target, sha256):
            try:
                write_verified(
                    read_chunks(stream),
                    target,
                    expected_sha256=sha256,
                    where=f"{target} (source changed while storing)",
                    fsync=self._fsync,
                )
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise StorageWriteError(f"cannot write to the store at {self.root}: {reason} (writing {target})") from exc
        return StoredObject(self.uri_for_key(key), key, sha256, size, content_type or guess_content_type(suffix))

    @staticmethod
    def _holds(target: Path, sha256: str) -> bool:
        """Whether `target` exists with the right bytes; a corrupt copy counts as absent, so it gets replaced."""
        return target.is_file() and file_digest(target)[0] == sha256

    def get_bytes(self, uri: str, *, sha256: str | None = None) -> bytes:
        path = self._existing_path(uri)
        expected = expected_digest(self.key_for_uri(uri), sha256, str(path))
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ChecksumMismatch.found(str(path), actual, expected)
        return data

    def get_file(self, uri: str, dest: str | Path, *, sha256: str | None = None) -> Path:
        path = self._existing_path(uri)
        expected = expected_digest(self.key_for_uri(uri), sha256, str(path))
        target = Path(dest)
        with path.open("rb") as stream:
            write_verified(read_chunks(stream), target, expected_sha256=expected, where=str(path), fsync=self._fsync)
        return target

    def exists(self, uri: str) -> bool:
        return self.path_for_uri(uri).is_file()

    def verify(self, uri: str, sha256: str, *, deep: bool = False) -> bool:
        """Always reads the file: on a local disk there is no cheaper evidence than the bytes."""
        path = self.path_for_uri(uri)
        return digest_of_key(self.key_for_uri(uri)) == sha256 and self._holds(path, sha256)

    def url_for(self, uri: str, *, expires: int = 3600) -> str:
        return str(self._existing_path(uri))

    def _existing_path(self, uri: str) -> Path:
        path = self.path_for_uri(uri)
        if not path.is_file():
            raise ObjectNotFound(f"no object at {path} (URI {uri})")
        return path

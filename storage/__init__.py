"""Artifact store: content-addressed, verified blob storage on S3 or a local folder.

A leaf package: it imports nothing else from Atelier, so the catalog, the tasks and
the CLI can all use it without dragging each other in.
"""

from __future__ import annotations

from storage.base import ArtifactStore, StoredObject
from storage.errors import (
    ChecksumMismatch,
    InvalidObjectName,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    StorageWriteError,
)

__all__ = [
    "ArtifactStore",
    "ChecksumMismatch",
    "InvalidObjectName",
    "ObjectNotFound",
    "StorageConfigError",
    "StorageError",
    "StorageUnavailable",
    "StorageWriteError",
    "StoredObject",
    "open_store",
]


def open_store(url: str, *, endpoint_url: str | None = None) -> ArtifactStore:
    """The backend for `url`: `s3://bucket[/prefix]` or `file://path`.

    boto3 is imported only for S3 stores, so local-only commands stay light.
    """
    if url.startswith("s3://"):
        from storage.s3 import S3Store

        return S3Store.from_url(url, endpoint_url=endpoint_url)
    if url.startswith("file://"):
        from storage.local import LocalStore

        return LocalStore.from_url(url)
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise StorageConfigError(f"unsupported store URL scheme {scheme!r}: use s3://bucket[/prefix] or file://path")

"""Storage errors, split by what the caller should do about them.

`transient` tells the orchestration layer whether a retry can help without anyone
changing anything: an unreachable endpoint may come back, a missing bucket will not.
Messages name the endpoint, bucket and key (or the local path), never credentials.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: anything the artifact store refuses or cannot do."""

    transient: bool = False


class StorageUnavailable(StorageError):
    """The store could not be reached or asked us to slow down, even after retries."""

    transient = True


class StorageConfigError(StorageError):
    """The store is reachable but misconfigured: missing bucket, access denied, no credentials."""


class ChecksumMismatch(StorageError):
    """Stored bytes do not hash to the sha256 they were stored under: the object is corrupt."""

    @classmethod
    def found(cls, where: str, actual: str, expected: str) -> ChecksumMismatch:
        """The one wording for a failed verification, naming the object."""
        return cls(f"checksum mismatch for {where}: content hashes to {actual}, expected {expected}")


class StorageWriteError(StorageError):
    """The store could not write an object: its disk is full or read-only, or access is denied.

    Not transient: someone has to free space or fix permissions first.
    """


class ObjectNotFound(StorageError):
    """The URI is well formed and belongs to this store, but nothing is stored there."""


class InvalidObjectName(StorageError, ValueError):
    """A suffix, prefix or URI that could not be turned into a safe key (never used unchecked)."""

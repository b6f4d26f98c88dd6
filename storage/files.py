"""Streaming helpers: hash while reading, and write files that are complete or absent.

Artifacts can be large (video, checkpoints), so nothing here holds a whole file in
memory, and a crash mid-write leaves a stray temp file, never a truncated object.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from storage.errors import ChecksumMismatch

CHUNK_SIZE = 1024 * 1024


def read_chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the stream's content in chunks until it is exhausted."""
    while chunk := stream.read(size):
        yield chunk


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        for chunk in read_chunks(stream):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_verified(
    chunks: Iterable[bytes], dest: Path, *, expected_sha256: str, where: str, fsync: bool = False
) -> int:
    """Write `chunks` to `dest` via a temp file and `os.replace`, only if they hash to `expected_sha256`.

    Returns the number of bytes written. On a mismatch the temp file is removed and
    `dest` is left as it was, so a reader never sees bytes that failed verification.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        if digest.hexdigest() != expected_sha256:
            raise ChecksumMismatch.found(where, digest.hexdigest(), expected_sha256)
        os.replace(temp_name, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return size

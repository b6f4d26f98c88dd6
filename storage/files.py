"""Streaming helpers: hash while reading, and write files that are complete or absent.

Artifacts can be large (video, checkpoints), so nothing here holds a whole file in
memory, and a crash mid-write leaves a stray temp file, never a truncated object.
Every file Atelier writes (store objects, the CLI's outputs and exports) goes through
:func:`atomic_path`, so none of them is ever seen half-written or lost to a failed write.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from storage.errors import ChecksumMismatch, StorageWriteError

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
    with atomic_path(dest) as temp, temp.open("wb") as out:
        digest = hashlib.sha256()
        size = 0
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        if fsync:
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected_sha256:
            raise ChecksumMismatch.found(where, digest.hexdigest(), expected_sha256)
    return size


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary file beside `dest` to write in full; it replaces `dest` only when the block ends
    without an error, and is removed otherwise, so `dest` is never half-written and an old `dest`
    survives a failed write.

    The temporary name keeps `dest`'s suffix (`.out.x1y2.part.png`), because writers such as
    Pillow and FFmpeg pick the format from it. The file gets the mode `open()` would give a new
    file (0666 less the umask), as `cp` does, not mkstemp's 0600. A `dest` that is a symbolic link
    is written through, where the link points. The folder is created if needed. A folder that
    cannot be written, a path under a file, or a `dest` that is a folder raise StorageWriteError,
    one line naming the path, before the block runs.
    """
    dest = Path(dest)
    if dest.is_symlink():
        dest = dest.resolve()
    if dest.is_dir():
        raise StorageWriteError(f"{dest}: is a folder; give a file name")
    ensure_folder(dest.parent, writing=dest)
    try:
        fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=f".part{dest.suffix}")
    except OSError as exc:
        raise StorageWriteError(f"{dest}: cannot write there ({_reason(exc)})") from None
    temp = Path(temp_name)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield temp
        try:
            os.replace(temp, dest)
        except OSError as exc:
            raise StorageWriteError(f"{dest}: cannot write there ({_reason(exc)})") from None
    except BaseException:
        with suppress(FileNotFoundError):
            temp.unlink()
        raise


def ensure_folder(folder: Path, *, writing: Path | None = None) -> None:
    """Create `folder` (and its parents) to write into, or the folder of the file `writing`;
    StorageWriteError naming that path when the folder is a file, lies under a file, or cannot
    be created."""
    label = writing or folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        under = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise StorageWriteError(f"{label}: is a file, not a folder" if under == label
                                else f"{label}: {under} is a file, not a folder") from None
    except OSError as exc:
        what = "its folder" if writing else "this folder"
        raise StorageWriteError(f"{label}: cannot create {what} ({_reason(exc)})") from None


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (`os.umask` alone
    would set it to 0 for a moment, for every thread)."""
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__

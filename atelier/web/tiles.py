"""Deep-zoom tiles of an artwork: a pyramid of PNG tiles, cut once per artwork and kept on disk.

A print-size artwork (10,800 x 7,200 px, about 200 MB as PNG) cannot be sent whole to look at
one corner at 1:1, and decoding it for every tile request would take seconds each. So the
first tile request of an artwork decodes it once and writes every level: level 0 is full
size, each next level half the one before (rounded up), down to the level that fits one
tile. Later requests are files. Tiles are keyed by the artwork's sha256 (its bytes never
change), so a pyramid is never stale, and PNG keeps the 1:1 view the artwork's own pixels.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

TILE_SIZE = 256
# Fast PNG compression: a 10,800 px artwork is some 1,700 tiles, cut while a visitor waits.
PNG_COMPRESS_LEVEL = 3
_DONE = "complete"


@dataclass(frozen=True)
class Pyramid:
    """The levels and tile grid of a `width` x `height` picture cut into `tile_size` tiles."""

    width: int
    height: int
    tile_size: int

    @property
    def levels(self) -> int:
        """Level 0 at full size down to the first level whose sides both fit one tile."""
        longest = max(self.width, self.height, 1)
        return max(0, math.ceil(math.log2(longest / self.tile_size))) + 1

    def size(self, level: int) -> tuple[int, int]:
        scale = 2 ** level
        return -(-self.width // scale), -(-self.height // scale)

    def grid(self, level: int) -> tuple[int, int]:
        width, height = self.size(level)
        return -(-width // self.tile_size), -(-height // self.tile_size)

    def has(self, level: int, col: int, row: int) -> bool:
        if not 0 <= level < self.levels:
            return False
        cols, rows = self.grid(level)
        return 0 <= col < cols and 0 <= row < rows


class TileNotFound(LookupError):
    """A tile outside the artwork's pyramid."""


class TileCache:
    """Pyramids under `root`/<sha256>/<tile size>/<level>/<col>_<row>.png, built once each.

    A pyramid is written into a temporary folder beside its place and renamed there when
    complete, so a reader never sees half of one, and two builders (threads or processes)
    cannot mix theirs.
    """

    def __init__(self, root: Path, tile_size: int = TILE_SIZE) -> None:
        self.root, self.tile_size = root, tile_size
        self.built = 0  # pyramids built by this cache (a figure for tests and benchmarks)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def tile(self, sha256: str, pyramid: Pyramid, level: int, col: int, row: int,
             source: Callable[[], AbstractContextManager[Path]]) -> Path:
        """The tile's file, building the artwork's pyramid first if needed (from the artwork's
        file that `source()` gives, entered only then)."""
        if not pyramid.has(level, col, row):
            raise TileNotFound(f"no tile {level}/{col}_{row}: the artwork has {pyramid.levels} levels "
                               f"of {pyramid.tile_size} px tiles")
        folder = self.root / sha256 / str(self.tile_size)
        if not (folder / _DONE).exists():
            with self._lock_for(sha256):
                if not (folder / _DONE).exists():
                    with source() as picture:
                        self._build(picture, folder)
        return folder / str(level) / f"{col}_{row}.png"

    def _lock_for(self, sha256: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(sha256, threading.Lock())

    def _build(self, picture: Path, folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            with Image.open(picture) as opened:
                image = opened.convert("RGB")  # decoded once, for every level
            for level in range(Pyramid(image.width, image.height, self.tile_size).levels):
                if level:
                    image = image.reduce(2)  # a 2x2 box filter: each level from the one before
                self._cut(image, work / str(level))
            (work / _DONE).touch()
            try:
                os.rename(work, folder)
            except OSError:  # another builder finished first: its pyramid is the same
                if not (folder / _DONE).exists():
                    raise
            self.built += 1
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _cut(self, image: Image.Image, into: Path) -> None:
        into.mkdir()
        size = self.tile_size
        for top in range(0, image.height, size):
            for left in range(0, image.width, size):
                tile = image.crop((left, top, min(left + size, image.width), min(top + size, image.height)))
                tile.save(into / f"{left // size}_{top // size}.png", compress_level=PNG_COMPRESS_LEVEL)

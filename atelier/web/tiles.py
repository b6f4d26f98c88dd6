"""Deep-zoom tiles of an artwork, cut from its levels decoded once and kept on disk.

A print-size artwork (10,800 x 7,200 px, about 70-200 MB as PNG) cannot be sent whole to look
at one corner at 1:1, and decoding it for every tile request takes seconds each. So the first
tile request of an artwork decodes it once and writes its levels as raw pixels (level 0 full
size, each next level half the one before, rounded up, down to the level that fits one tile).
Each tile is then cut from its level's memory-mapped file when first asked for (a few
milliseconds), and kept as a PNG. Cutting every tile at once instead took 54 s for a
10,800 x 7,200 artwork on a busy 2-core machine, against about 11 s for the levels alone.

Everything is keyed by the artwork's sha256 (its bytes never change), so nothing is ever
stale, and PNG keeps the 1:1 view the artwork's own pixels.
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

import numpy as np
from PIL import Image

TILE_SIZE = 256
# Fast PNG compression: tiles are cut while a visitor waits.
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
    """Under `root`/<sha256>: levels/<level>.npy (raw RGB, written once per artwork) and
    <tile size>/<level>/<col>_<row>.png (each tile written when first asked for).

    The levels are written into a temporary folder and renamed into place when complete, and
    each tile into a temporary file renamed over its name, so a reader never sees half of one
    and two builders (threads or processes) cannot mix theirs.
    """

    def __init__(self, root: Path, tile_size: int = TILE_SIZE) -> None:
        self.root, self.tile_size = root, tile_size
        self.decoded = 0  # artworks decoded by this cache (a figure for tests and benchmarks)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def tile(self, sha256: str, pyramid: Pyramid, level: int, col: int, row: int,
             source: Callable[[], AbstractContextManager[Path]]) -> Path:
        """The tile's file, decoding the artwork's levels first if needed (from the artwork's
        file that `source()` gives, entered only then)."""
        if not pyramid.has(level, col, row):
            raise TileNotFound(f"no tile {level}/{col}_{row}: the artwork has {pyramid.levels} levels "
                               f"of {pyramid.tile_size} px tiles")
        path = self.root / sha256 / str(self.tile_size) / str(level) / f"{col}_{row}.png"
        if path.exists():
            return path
        levels = self.root / sha256 / "levels"
        if not (levels / _DONE).exists():
            with self._lock_for(sha256):
                if not (levels / _DONE).exists():
                    with source() as picture:
                        self._decode(picture, levels)
        pixels = np.load(levels / f"{level}.npy", mmap_mode="r")
        size = self.tile_size
        tile = Image.fromarray(np.ascontiguousarray(pixels[row * size:(row + 1) * size, col * size:(col + 1) * size]))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tile-", suffix=".png", delete=False) as temporary:
            tile.save(temporary, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        os.replace(temporary.name, path)
        return path

    def _lock_for(self, sha256: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(sha256, threading.Lock())

    def _decode(self, picture: Path, levels: Path) -> None:
        levels.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".levels-", dir=levels.parent))
        try:
            with Image.open(picture) as opened:
                image = opened.convert("RGB")  # decoded once, for every level
            for level in range(Pyramid(image.width, image.height, self.tile_size).levels):
                if level:
                    image = image.reduce(2)  # a 2x2 box filter: each level from the one before
                np.save(work / f"{level}.npy", np.asarray(image))
            (work / _DONE).touch()
            try:
                os.rename(work, levels)
            except OSError:  # another process finished first: its levels are the same
                if not (levels / _DONE).exists():
                    raise
            self.decoded += 1
        finally:
            shutil.rmtree(work, ignore_errors=True)

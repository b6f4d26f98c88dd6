"""Zoom tiles and Range requests of the gallery on a print-size artwork, measured side by side.

    PYTHONPATH=. .venv/bin/python bench/web_tiles.py [--width 10800 --height 7200 --tile 256]

Prints: decoding the artwork into levels (the first view), cutting a new tile, serving a tile
already cut, and cutting every tile of the pyramid at once (what a viewer would wait for if
the pyramid were built whole); and the sha256 check of a stored file per Range request, cold
against remembered. The artwork is scikit-image's astronaut, upscaled (no data files needed).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from PIL import Image
from skimage import data

from atelier.web.media import VerifiedFiles
from atelier.web.tiles import Pyramid, TileCache
from storage.local import LocalStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10_800)
    parser.add_argument("--height", type=int, default=7_200)
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-tiles-") as folder:
        root = Path(folder)
        store = LocalStore(root / "store")
        picture = Image.fromarray(data.astronaut()).resize((args.width, args.height), Image.BICUBIC)
        encoded = io.BytesIO()
        picture.save(encoded, format="PNG", compress_level=1)
        stored = store.put_bytes(encoded.getvalue(), suffix=".png")
        path = store.path_for_uri(stored.uri)
        print(f"artwork {args.width} x {args.height} px, {stored.size / 1e6:.0f} MB PNG, {args.tile} px tiles")

        pyramid = Pyramid(args.width, args.height, args.tile)
        lazy = TileCache(root / "lazy", args.tile)
        source = lambda: nullcontext(path)  # noqa: E731
        started = time.perf_counter()
        lazy.tile(stored.sha256, pyramid, pyramid.levels - 1, 0, 0, source)
        first = time.perf_counter() - started
        cols, rows = pyramid.grid(0)
        sample = [(c, r) for r in range(min(rows, 4)) for c in range(min(cols, 10))]
        started = time.perf_counter()
        for c, r in sample:
            lazy.tile(stored.sha256, pyramid, 0, c, r, source)
        new = (time.perf_counter() - started) / len(sample)
        started = time.perf_counter()
        for c, r in sample:
            lazy.tile(stored.sha256, pyramid, 0, c, r, source)
        cut = (time.perf_counter() - started) / len(sample)
        every = [(level, c, r) for level in range(pyramid.levels)
                 for r in range(pyramid.grid(level)[1]) for c in range(pyramid.grid(level)[0])]
        whole = TileCache(root / "whole", args.tile)
        started = time.perf_counter()
        for level, c, r in every:
            whole.tile(stored.sha256, pyramid, level, c, r, source)
        all_tiles = time.perf_counter() - started
        print(f"first view (decode into {pyramid.levels} levels): {first:.2f} s")
        print(f"a new tile: {new * 1e3:.1f} ms; a tile already cut: {cut * 1e6:.0f} us")
        print(f"every tile at once ({len(every)} tiles): {all_tiles:.1f} s, {all_tiles / first:.1f}x the first view")

        verified = VerifiedFiles()
        started = time.perf_counter()
        verified.intact(store, stored.uri, stored.sha256, path)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(100):
            verified.intact(store, stored.uri, stored.sha256, path)
        warm = (time.perf_counter() - started) / 100
        print(f"sha256 check per Range request: {cold * 1e3:.0f} ms hashed, {warm * 1e6:.0f} us remembered "
              f"({cold / warm:.0f}x)")


if __name__ == "__main__":
    main()

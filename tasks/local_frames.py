"""`atelier stylize-video`'s per-frame checkpoints, kept beside its output so that a stopped run resumes.

A catalog job checkpoints its frames to the store; a clip rendered outside the catalog has no
store, and a stopped run used to start again from frame 0. Here each finished frame is a
lossless PNG (the same format as a job's checkpoints) in ``.<output name>.frames/<key>/``, where
the key hashes the clip's sha256, the canonical parameters and what paints the frames (style
images, model, weights): frames of another clip, other parameters or another style are never
taken up. The folder goes once the output is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from storage.files import atomic_path, file_digest
from tasks.video_render import Finished, frame_png, read_frame_png


class LocalFrames:
    """The finished frames of one render (one output, clip, parameters and stylizer)."""

    def __init__(self, output: Path, key: str) -> None:
        self.root = output.parent / f".{output.name}.frames"
        self.folder = self.root / key[:32]

    @classmethod
    def for_render(cls, output: Path, source: Path, params: Mapping[str, Any], painter: Mapping[str, Any]) -> LocalFrames:
        identity = json.dumps({"clip": file_digest(source)[0], "params": params, "painter": painter}, sort_keys=True, default=str)
        return cls(output, hashlib.sha256(identity.encode()).hexdigest())

    def finished(self) -> list[Finished]:
        """The frames done so far, from the range's first on, up to the first one missing."""
        frames = []
        while (path := self._path(len(frames))).is_file():
            frames.append(read_frame_png(path.read_bytes()))
        return frames

    def count(self) -> int:
        done = 0
        while self._path(done).is_file():
            done += 1
        return done

    def save(self, image: np.ndarray, report: Any) -> None:
        """Keep one finished frame; written aside and renamed, so a kill never leaves half a PNG."""
        with atomic_path(self._path(report.index)) as partial:
            partial.write_bytes(frame_png(image, report.losses, **{"atelier:frame": str(report.index)}))

    def remove(self) -> None:
        """The output is complete: its checkpoints (of this render and any other) are no longer needed."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _path(self, index: int) -> Path:
        return self.folder / f"frame-{index:06d}.png"

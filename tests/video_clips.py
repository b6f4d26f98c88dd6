"""Tiny generated clips for the video tests: textures moving by a known flow, cuts, audio, bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def texture(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture: structure everywhere for the flow, no sharp aliasing."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth * 255, 0, 255).astype(np.uint8)


def panning_frames(count: int, *, height: int = 48, width: int = 64, step: int = 2, seed: int = 0) -> list[np.ndarray]:
    """A camera pan: frame t is a window of a wider texture moved left by ``step`` px per frame.

    So a pixel (x, y) of frame t sits at (x - step, y) in frame t+1: the flow t -> t-1 is (+step, 0).
    """
    wide = texture(height, width + step * count, seed)
    return [np.ascontiguousarray(wide[:, step * t : step * t + width]) for t in range(count)]


def write_clip(
    path: Path, frames: list[np.ndarray], fps: float = 10, *, pts_ms: list[int] | None = None, audio: bool = False,
    faststart: bool = False,
) -> Path:
    """An H.264 MP4 of ``frames`` (constant ``fps``, or the given timestamps), optionally with a tone,
    and with its index at the front (``faststart``) as web clips have it."""
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as output:
        stream = output.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p" if stream.height % 2 or stream.width % 2 else "yuv420p"  # 4:2:0 needs even sides
        stream.options = {"crf": "10"}
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        sound = output.add_stream("aac", rate=8000) if audio else None
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts_ms is not None:
                picture.pts, picture.time_base = pts_ms[index], Fraction(1, 1000)
            output.mux(stream.encode(picture))
        output.mux(stream.encode())
        if sound is not None:
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(8000 * len(frames) / fps)) / 8000)).astype(np.float32)
            for start in range(0, samples.size, 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 8000, start
                output.mux(sound.encode(chunk))
            output.mux(sound.encode())
    return path


def write_cut_in_half(path: Path, frames: int = 30) -> Path:
    """A faststart MP4 cut in half, as an interrupted download leaves it: the index at the front
    still lists every frame, the bytes of the later ones are gone."""
    whole = write_clip(path.with_name(f"whole-{path.name}"), panning_frames(frames, step=5), faststart=True)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_empty_clip(path: Path) -> Path:
    """An AVI with a video stream and no frames at all."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    writer.release()
    return path


def corrupt_clip(source: Path, path: Path) -> Path:
    """A clip whose container is intact but whose compressed frames are noise."""
    data = bytearray(source.read_bytes())
    start = data.find(b"mdat") + 4
    data[start : start + len(data) // 2] = np.random.default_rng(0).integers(0, 256, len(data) // 2, np.uint8).tobytes()
    path.write_bytes(bytes(data[: len(data)]))
    return path

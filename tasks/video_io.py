"""Reading clips into frames and writing frames back as a browser-playable MP4.

Validation happens once, up front, in :func:`probe_video`, so a bad upload fails with one line
naming the file (an :class:`InvalidInputError`, never retried) before any frame is stylized.
Decoding uses OpenCV (the frames); PyAV reads the container (exact frame count, timestamps for
the constant-frame-rate check, the audio stream) and writes H.264 + the source's audio.

Odd frame dimensions are cropped by one pixel to even (H.264 in yuv420p, what browsers play,
needs even sizes); the crop is reported in :attr:`VideoInfo.notes`, not refused: refusing a
normal phone clip over one pixel would help nobody.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from style_engine.errors import InvalidInputError

VFR_TOLERANCE = 0.02  # relative spread of frame durations still counted as constant
PREVIEW_SECONDS = 3.0
PREVIEW_FPS = 8
PREVIEW_SIDE = 240
POSTER_SIDE = 256
STILL_IMAGE_FORMATS = frozenset({"image2", "apng", "gif", "webp"})  # FFmpeg demuxers of pictures
CRF = 18  # visually lossless for stylized frames; H.264's default 23 smears brush strokes


@dataclass(frozen=True)
class VideoInfo:
    """What the catalog records about a clip, and what decoding needs to know."""

    width: int
    height: int
    fps: float
    frames: int
    duration: float  # seconds
    codec: str
    has_audio: bool
    notes: tuple[str, ...] = field(default=())


def probe_video(path: str | Path, *, name: str | None = None) -> VideoInfo:
    """Validate a clip fully enough that decoding it will work; describe it.

    Refused, each with one line naming the file: not a video, no video stream, zero frames, a
    codec that cannot be decoded, a variable frame rate, a frame size that changes mid-clip.
    """
    import av

    label = name or str(path)
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise InvalidInputError(f"{label}: no such file") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise InvalidInputError(f"{label}: not a readable video ({_reason(exc)})") from None
    with container:
        if container.format.name in STILL_IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            raise InvalidInputError(f"{label}: a still image, not a video")
        if not container.streams.video:
            raise InvalidInputError(f"{label}: not a video (no video stream)")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        has_audio = bool(container.streams.audio)
        stamps, decoded = _decode_all(container, stream, label)
        listed = max(stream.frames, len(stamps))  # what the index promises, even past the end of the file
        time_base = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate
    if not stamps:
        raise InvalidInputError(f"{label}: the video has zero frames")
    if decoded == 0:
        raise InvalidInputError(f"{label}: cannot decode its {codec} video stream (unsupported or corrupt codec data)")
    if decoded < listed:
        raise InvalidInputError(
            f"{label}: damaged video: only the first {decoded} of its {listed} frames can be decoded "
            "(a truncated or corrupt file); re-encode the readable part first (e.g. ffmpeg -i IN OUT)"
        )
    _check_constant_rate(label, stamps, time_base)
    width, height = _first_frame_size(path, label, codec)
    fps = float(rate) if rate else 1.0 / float(np.median(np.diff(stamps)) * time_base) if len(stamps) > 1 else 0.0
    if fps <= 0:
        raise InvalidInputError(f"{label}: no frame rate can be determined")
    notes = ()
    if width % 2 or height % 2:
        notes = (f"{width}x{height} has an odd side: frames are cropped to {width - width % 2}x{height - height % 2} "
                 "(H.264 for browsers needs even sizes)",)
    return VideoInfo(width, height, fps, len(stamps), len(stamps) / fps, codec, has_audio, notes)


def _decode_all(container, stream, label: str) -> tuple[list[int], int]:  # noqa: ANN001
    """The sorted timestamps of the frames the index lists, and how many frames really decode.

    A file cut short whose index sits at the front (MP4 "faststart") lists every frame while the
    bytes of the last ones are gone: counting the index alone registered frames no job could
    read. Decoding everything costs about 0.4 s per 10 s of 720p on two cores.
    """
    import av

    stream.thread_type = "AUTO"
    stamps: list[int] = []
    decoded = 0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size > 0:
                stamps.append(packet.pts)
            decoded += len(packet.decode())
    except av.error.InvalidDataError:
        pass  # the frames decoded so far are what the clip holds; the caller names the damage
    except av.error.FFmpegError as exc:
        raise InvalidInputError(f"{label}: corrupt video data ({_reason(exc)})") from None
    return sorted(stamps), decoded


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc).split(":")[0] or type(exc).__name__


def _check_constant_rate(label: str, stamps: list[int], time_base: Fraction) -> None:
    """Flow and the temporal loss assume equal time between frames; a VFR clip breaks both."""
    if len(stamps) < 3:
        return
    steps = np.diff(np.asarray(stamps, dtype=np.float64)) * float(time_base)
    typical = float(np.median(steps))
    if typical <= 0 or (np.abs(steps - typical) > VFR_TOLERANCE * typical).any():
        low, high = float(steps.min()), float(steps.max())
        raise InvalidInputError(
            f"{label}: variable frame rate (frame durations from {low * 1000:.1f} to {high * 1000:.1f} ms); "
            "convert it to a constant rate first (e.g. ffmpeg -i IN -vf fps=25 OUT)"
        )


def _first_frame_size(path: str | Path, label: str, codec: str) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise InvalidInputError(f"{label}: cannot decode its {codec} video stream (unsupported or corrupt codec data)")
    height, width = frame.shape[:2]
    return width, height


def check_range(info: VideoInfo, start: int, count: int | None, label: str) -> int:
    """The number of frames in ``[start, start + count)``; refuse a range that leaves the clip."""
    end = info.frames if count is None else start + count
    if start >= info.frames or end > info.frames:
        shown = f"{start}..{end - 1}" if count is not None else f"from {start}"
        raise InvalidInputError(f"{label}: frame range {shown} is outside the clip (frames 0..{info.frames - 1})")
    return end - start


def frame_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(width, height) of decoded frames: long side ``size`` (the source's when None), both even."""
    width, height = info.width - info.width % 2, info.height - info.height % 2
    if size is None:
        return width, height
    scale = size / max(info.width, info.height)
    return max(2, 2 * round(info.width * scale / 2)), max(2, 2 * round(info.height * scale / 2))


def read_frames(
    path: str | Path, info: VideoInfo, *, size: int | None = None, start: int = 0, count: int | None = None,
    name: str | None = None,
) -> Iterator[np.ndarray]:
    """Decode frames ``start .. start+count-1`` as uint8 RGB (H, W, 3), resized to :func:`frame_size`."""
    label = name or str(path)
    wanted = check_range(info, start, count, label)
    width, height = frame_size(info, size)
    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(start):
            if not capture.grab():
                raise InvalidInputError(f"{label}: the stream ends before frame {start}")
        for index in range(start, start + wanted):
            ok, frame = capture.read()
            if not ok or frame is None:
                raise InvalidInputError(f"{label}: cannot decode frame {index}")
            if frame.shape[:2] != (info.height, info.width):
                raise InvalidInputError(
                    f"{label}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, the clip starts at "
                    f"{info.width}x{info.height} (frame sizes must not change)"
                )
            frame = frame[: info.height - info.height % 2, : info.width - info.width % 2]
            if frame.shape[:2] != (height, width):
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def write_mp4(
    frames: Iterable[np.ndarray],
    target: str | Path,
    fps: float,
    *,
    audio_from: str | Path | None = None,
    audio_start: float = 0.0,
    audio_duration: float | None = None,
) -> int:
    """Encode uint8 RGB frames as H.264 (yuv420p, +faststart) MP4; copy the audio of ``audio_from``.

    The audio packets are passed through untouched (no re-encode), those of
    ``[audio_start, audio_start + audio_duration)`` only, shifted to start at 0. Returns the
    number of frames written.
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    written = 0
    with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium"}
        # Every stream must exist before the first packet is written (the header goes out then).
        source = av.open(str(audio_from)) if audio_from is not None else None
        try:
            audio = source.streams.audio[0] if source is not None and source.streams.audio else None
            audio_out = output.add_stream_from_template(audio) if audio is not None else None
            for frame in frames:
                if written == 0:
                    stream.height, stream.width = frame.shape[:2]
                if frame.shape[0] % 2 or frame.shape[1] % 2:
                    raise InvalidInputError(f"{target}: frame of {frame.shape[1]}x{frame.shape[0]}: H.264 needs even sizes")
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
                output.mux(stream.encode(picture))
                written += 1
            output.mux(stream.encode())
            if audio is not None:
                _copy_audio(source, audio, audio_out, output, audio_start, audio_duration)
        finally:
            if source is not None:
                source.close()
    return written


def _copy_audio(source, audio, audio_out, output, start: float, duration: float | None) -> None:  # noqa: ANN001
    """Mux the audio packets of ``[start, start + duration)`` unchanged, shifted to begin at 0."""
    first = None
    for packet in source.demux(audio):
        if packet.pts is None or packet.size == 0:
            continue
        seconds = float(packet.pts * audio.time_base)
        if seconds < start - 1e-6 or (duration is not None and seconds >= start + duration):
            continue
        first = packet.pts if first is None else first
        packet.dts = packet.pts - first if packet.dts is None else packet.dts - first
        packet.pts -= first
        packet.stream = audio_out
        output.mux(packet)


def preview_webp(frames: list[np.ndarray], fps: float) -> bytes:
    """A short, small animated WebP (first few seconds, a few frames per second) for galleries."""
    step = max(1, round(fps / PREVIEW_FPS))
    chosen = frames[: max(1, int(PREVIEW_SECONDS * fps)) : step]
    pictures = []
    for frame in chosen:
        picture = Image.fromarray(frame)
        picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
        pictures.append(picture)
    buffer = io.BytesIO()
    duration = round(1000 * step / fps)
    pictures[0].save(buffer, format="WEBP", save_all=True, append_images=pictures[1:], duration=duration, loop=0,
                     quality=80)
    return buffer.getvalue()


def poster(frame: np.ndarray) -> Image.Image:
    """The poster thumbnail: the first stylized frame, small."""
    picture = Image.fromarray(frame)
    picture.thumbnail((POSTER_SIDE, POSTER_SIDE), Image.Resampling.LANCZOS)
    return picture

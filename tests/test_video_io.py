"""Video in and out: probing and decoding keep fps and frames, the MP4 plays back, bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from style_engine.errors import InvalidInputError
from tasks.video_io import frame_size, poster, preview_webp, probe_video, read_frames, write_mp4
from tests.video_clips import corrupt_clip, panning_frames, write_clip, write_cut_in_half, write_empty_clip

pytestmark = pytest.mark.unit


def test_probe_and_decode_keep_fps_frames_and_range(tmp_path: Path) -> None:
    frames = panning_frames(8)
    clip = write_clip(tmp_path / "pan.mp4", frames, fps=12.5)
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (64, 48, 8, 12.5, False)
    assert info.duration == pytest.approx(8 / 12.5)
    decoded = list(read_frames(clip, info, start=2, count=3))
    assert len(decoded) == 3
    errors = [np.abs(decoded[0].astype(float) - frame).mean() for frame in frames]
    assert int(np.argmin(errors)) == 2  # the range starts at the right frame
    small = list(read_frames(clip, info, size=32, count=2))
    assert small[0].shape == (24, 32, 3)


def test_mp4_plays_back_with_frame_count_fps_and_audio(tmp_path: Path) -> None:
    import av

    source = write_clip(tmp_path / "with-sound.mp4", panning_frames(10), fps=10, audio=True)
    out = tmp_path / "out.mp4"
    frames = [np.full((24, 32, 3), 10 * i, np.uint8) for i in range(10)]
    assert write_mp4(frames, out, 10, audio_from=source) == 10
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert float(video.average_rate) == pytest.approx(10)
        assert len(container.streams.audio) == 1
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 10
    assert np.abs(decoded[7].astype(float) - 70).mean() < 2
    info = probe_video(out)
    assert (info.frames, info.fps, info.has_audio, info.width, info.height) == (10, 10.0, True, 32, 24)


def test_preview_and_poster(tmp_path: Path) -> None:
    frames = panning_frames(30)
    webp = tmp_path / "p.webp"
    webp.write_bytes(preview_webp(frames, fps=10))
    with Image.open(webp) as animation:
        assert animation.n_frames > 1
    assert max(poster(frames[0]).size) <= 256


def _saved(path: Path, save) -> Path:  # noqa: ANN001
    save(path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: _saved(d / "notes.mp4", lambda p: p.write_text("hello")), "not a readable video"),
        (lambda d: _saved(d / "still.png", Image.new("RGB", (40, 40)).save), "a still image, not a video"),
        (lambda d: write_empty_clip(d / "empty.avi"), "zero frames"),
        (lambda d: write_cut_in_half(d / "cut.mp4"), "damaged video: only the first"),
        (lambda d: corrupt_clip(write_clip(d / "ok.mp4", panning_frames(6)), d / "garbled.mp4"), "cannot decode"),
        (
            lambda d: write_clip(d / "vfr.mp4", panning_frames(6), pts_ms=[0, 100, 200, 450, 500, 900]),
            "variable frame rate",
        ),
    ],
    ids=["not-a-video", "still-image", "zero-frames", "faststart-cut-in-half", "unreadable-codec", "variable-frame-rate"],
)
def test_bad_videos_fail_with_one_line_naming_the_file(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InvalidInputError) as caught:
        probe_video(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_frame_range_outside_the_clip_is_refused(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "short.mp4", panning_frames(5))
    info = probe_video(clip)
    for start, count in ((5, None), (3, 4)):
        with pytest.raises(InvalidInputError, match=r"short.mp4: frame range .* is outside the clip \(frames 0..4\)"):
            list(read_frames(clip, info, start=start, count=count))


def test_odd_sizes_are_cropped_to_even_and_said(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "odd.mp4", [f[:47, :63].copy() for f in panning_frames(3)])
    info = probe_video(clip)
    assert "cropped to 62x46" in info.notes[0]
    assert frame_size(info, None) == (62, 46)
    assert next(read_frames(clip, info)).shape == (46, 62, 3)
    assert all(side % 2 == 0 for side in frame_size(info, 41))

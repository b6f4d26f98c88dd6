"""`atelier stylize-video` outside the catalog (issue 21): an odd --size is rounded to even as the
README says; Ctrl-C says what it kept and exits 130; the same command then resumes from the frames
kept beside the output instead of frame 0, and removes them once the output is complete; and
with its output going to a pipe, it logs a line at every tenth of the clip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.video_clips import panning_frames, texture, write_clip

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.unit
def test_an_odd_size_is_rounded_up_to_even() -> None:
    from style_engine.video.params import VideoGatysParams, VideoITNParams

    assert VideoGatysParams(size=33).size == 34
    assert VideoITNParams(model="starry", size=49).size == 50


@pytest.mark.e2e
def test_ctrl_c_keeps_the_finished_frames_and_the_same_command_resumes_after_them(tmp_path: Path) -> None:
    from tasks.video_io import probe_video

    frames = 12  # frame 0's checkpoint is the signal to interrupt: enough frames after it that
    # the interrupt always lands while work is left, however fast the machine (3 once raced it)
    write_clip(tmp_path / "clip.mp4", panning_frames(frames), fps=10)
    Image.fromarray(texture(64, 64, seed=5)).save(tmp_path / "style.png")
    command = [sys.executable, "-c", "from atelier.cli import app; app()", "stylize-video", "clip.mp4", "out.mp4",
               "--style", "style.png", "--size", "33", "--iterations", "2", "--frame-iterations", "15",
               "--param", "tolerance=null", "--param", "precision=fp32"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kept = tmp_path / ".out.mp4.frames"

    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(kept.glob("*/frame-000000.png")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    out, err = first.communicate(timeout=60)

    assert first.returncode == 130, err
    (saved,) = kept.iterdir()
    done = len(list(saved.glob("frame-*.png")))
    assert 1 <= done < frames
    assert f"interrupted: {done} finished frame" in err and f"kept in {saved.relative_to(tmp_path)}" in err and "run the same command" in err
    assert "Traceback" not in err

    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert second.returncode == 0, second.stderr
    assert f"resuming after the {done} frames kept in {saved.relative_to(tmp_path)}" in second.stderr
    assert f"stylizing: frame {frames}/{frames} (100%)" in second.stderr  # stderr is a pipe: lines, not a bar
    assert not kept.exists()  # complete: the checkpoints are gone
    info = probe_video(tmp_path / "out.mp4")
    assert (info.frames, info.width, info.height) == (frames, 34, 26)

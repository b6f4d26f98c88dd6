"""Issue 21 (data loss, tracebacks, file modes): the commands that write files never write over
their own input, write each file whole or not at all (a temporary file renamed into place), give
the user's umask to what they write, and answer a path they cannot write with one line, exit 2.

"Unwritable" is made in ways that hold for root too: a path under a regular file, /proc, a
folder where a file is asked for, and a read-only tmpfs (skipped where mounting is not allowed).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.images import draw_strokes, skimage_image
from tests.video_clips import panning_frames, write_clip

pytestmark = pytest.mark.integration


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.rglob("*.part*"))


def one_line_error(result, *words: str, after: int = 0) -> None:
    """Exit 2 with one error line naming what is wrong (exit 1 would be a traceback), after
    `after` lines of the command's own."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == after + 1 and lines[-1].startswith("error:"), result.output
    for word in words:
        assert word in lines[-1], (word, lines[-1])


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder no one can write in, root included: a read-only tmpfs."""
    mount = tmp_path / "read-only"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


@pytest.fixture
def pictures(atelier, tmp_path: Path):
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    skimage_image("astronaut", 48).save(tmp_path / "photo.png")
    draw_strokes(48, 48).save(tmp_path / "style.png")
    return app, tmp_path / "photo.png", tmp_path / "style.png"


# ---- the shared writer ------------------------------------------------------------------------


@pytest.mark.unit
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    from storage.files import atomic_path

    target = tmp_path / "out.png"
    target.write_bytes(b"the old render")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".png" and temp.name.startswith(".out.")
        temp.write_bytes(b"half a ren")
        raise RuntimeError("power cut")
    assert target.read_bytes() == b"the old render" and leftovers(tmp_path) == []

    with atomic_path(target) as temp:
        temp.write_bytes(b"the new render")
        assert target.read_bytes() == b"the old render"  # nothing is seen before the rename
    assert target.read_bytes() == b"the new render" and leftovers(tmp_path) == []


@pytest.mark.unit
def test_written_files_get_the_umask_not_0600_and_links_are_written_through(tmp_path: Path, umask_027) -> None:
    from storage.files import atomic_path

    with atomic_path(tmp_path / "new.png") as temp:
        temp.write_bytes(b"x")
    assert stat.S_IMODE((tmp_path / "new.png").stat().st_mode) == 0o640  # as open() or cp would give

    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(real)
    with atomic_path(tmp_path / "link.png") as temp:
        temp.write_bytes(b"new")
    assert (tmp_path / "link.png").is_symlink() and real.read_bytes() == b"new"


# ---- stylize ----------------------------------------------------------------------------------


def test_stylize_refuses_an_output_that_is_its_input_by_any_name(pictures, tmp_path: Path) -> None:
    app, photo, style = pictures
    (tmp_path / "link.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    before = {path: sha256(path) for path in (photo, style)}
    for output in (photo, tmp_path / "." / "photo.png", tmp_path / "link.png", tmp_path / "hard.png", style):
        result = app.cli("stylize", str(photo), str(style), "-o", str(output), "--method", "noop", "--size", "32",
                         expect=None)
        one_line_error(result, str(output), "choose another output path")
    assert {path: sha256(path) for path in before} == before


def test_stylize_into_a_path_it_cannot_write_is_one_line(pictures, tmp_path: Path, read_only_folder: Path) -> None:
    app, photo, style = pictures
    for output, words in ((photo / "out.png", ["is a file, not a folder"]), (Path("/proc/atelier-out.png"), ["/proc"]),
                          (read_only_folder / "out.png", ["Read-only file system"])):
        result = app.cli("stylize", str(photo), str(style), "-o", str(output), "--method", "noop", "--size", "32",
                         expect=None)
        one_line_error(result, *words)


def test_stylize_writes_with_the_umask(pictures, tmp_path: Path, umask_027) -> None:
    """A guard: through a temporary file (mkstemp's 0600), the output must still get the umask."""
    app, photo, style = pictures
    app.cli("stylize", str(photo), str(style), "-o", str(tmp_path / "out" / "render.jpg"), "--method", "noop",
            "--size", "32")
    assert stat.S_IMODE((tmp_path / "out" / "render.jpg").stat().st_mode) == 0o640
    assert leftovers(tmp_path / "out") == []


# ---- stylize-video ----------------------------------------------------------------------------


@pytest.fixture
def clip(atelier, tmp_path: Path):
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    draw_strokes(48, 48).save(tmp_path / "style.png")
    return app, write_clip(tmp_path / "clip.mp4", panning_frames(4), fps=10), tmp_path / "style.png"


QUICK_VIDEO = ("--size", "48", "--frames", "2", "--iterations", "2", "--frame-iterations", "2")


def test_stylize_video_refuses_to_write_over_its_clip(clip, tmp_path: Path) -> None:
    app, source, style = clip
    original = sha256(source)
    (tmp_path / "link.mp4").symlink_to(source)
    os.link(source, tmp_path / "hard.mp4")
    for output in (source, tmp_path / "." / "clip.mp4", tmp_path / "link.mp4", tmp_path / "hard.mp4"):
        result = app.cli("stylize-video", str(source), str(output), "--style", str(style), *QUICK_VIDEO, expect=None)
        one_line_error(result, str(output), "choose another output path")
    assert sha256(source) == original


def test_stylize_video_into_a_folder_it_cannot_write_is_one_line(clip, read_only_folder: Path) -> None:
    app, source, style = clip
    for output, words in ((Path("/proc/atelier-out.mp4"), ["/proc/atelier-out.mp4"]),
                          (read_only_folder / "out.mp4", ["Read-only file system"]),
                          (source / "out.mp4", ["is a file, not a folder"])):
        result = app.cli("stylize-video", str(source), str(output), "--style", str(style), *QUICK_VIDEO, expect=None)
        one_line_error(result, *words)


def test_a_video_render_that_fails_midway_leaves_the_previous_output_whole(clip, tmp_path: Path, monkeypatch) -> None:
    import tasks.video_io

    app, _, style = clip
    source = write_clip(tmp_path / "with-sound.mp4", panning_frames(4), fps=10, audio=True)
    output = tmp_path / "out.mp4"
    output.write_bytes(source.read_bytes())  # last week's render, say
    before = sha256(output)

    def power_cut(*args, **kwargs):  # after the video packets, while the sound is copied
        raise RuntimeError("power cut")

    monkeypatch.setattr(tasks.video_io, "_copy_audio", power_cut)
    result = app.cli("stylize-video", str(source), str(output), "--style", str(style), *QUICK_VIDEO, expect=None)
    assert isinstance(result.exception, RuntimeError)
    assert sha256(output) == before and leftovers(tmp_path) == []


# ---- models export ----------------------------------------------------------------------------


@pytest.fixture
def model(pictures, tmp_path: Path):
    """A catalog with a (untrained) light network recorded as model 'tiny', without running a training."""
    import io

    import torch

    from db.claims import claim_jobs
    from db.runs import ArtifactRecord, start_run
    from db.trained_models import record_model
    from style_engine.itn.network import build_network

    app, photo, style = pictures
    app.cli("catalog", "add", str(photo), "--role", "content")
    app.cli("catalog", "add", str(style), "--role", "style")
    app.cli("jobs", "add", "--content", "photo", "--style", "style", "--method", "noop")
    workshop = app.workshop()
    (job_id,) = claim_jobs(workshop.catalog, 1, "test", 60)
    run_id = start_run(workshop.catalog, job_id, "test")
    buffer = io.BytesIO()
    torch.save({"arch": "light", "model": build_network("light", 0).state_dict()}, buffer)
    put = workshop.store.put_bytes(buffer.getvalue(), suffix=".pt")
    record_model(workshop.catalog, name="tiny", method="itn", style_id=2, run_id=run_id, job_id=job_id,
                 weights=ArtifactRecord("model", put.uri, put.sha256, put.size, "application/octet-stream"),
                 params={"arch": "light"}, metrics={})
    return app, workshop.store.path_for_uri(put.uri), put.sha256


def test_models_export_never_writes_over_the_stored_model(model, tmp_path: Path) -> None:
    app, stored, digest = model
    app.cli("models", "export", "tiny", "-o", str(tmp_path / "tiny.onnx"))  # fills the input cache too
    cached = next((tmp_path / "cache").rglob(digest))
    for output in (stored, cached):
        one_line_error(app.cli("models", "export", "tiny", "-o", str(output), expect=None),
                       str(output), "choose another output path")
    assert sha256(stored) == digest and sha256(cached) == digest


def test_models_export_into_a_path_it_cannot_write_is_one_line(model, tmp_path: Path, read_only_folder: Path) -> None:
    app, stored, _ = model
    (tmp_path / "a-folder").mkdir()
    for output, words in ((tmp_path / "a-folder", ["is a folder"]), (Path("/proc/tiny.onnx"), ["/proc/tiny.onnx"]),
                          (stored / "tiny.onnx", ["is a file, not a folder"]),
                          (read_only_folder / "tiny.onnx", ["Read-only file system"])):
        one_line_error(app.cli("models", "export", "tiny", "-o", str(output), expect=None), *words)
    assert leftovers(tmp_path) == []


# ---- reproduce -o ------------------------------------------------------------------------------


def test_reproduce_never_writes_over_a_stored_file_and_an_unwritable_output_is_one_line(pictures, tmp_path: Path) -> None:
    from db.queries import show_artwork
    from tests.fixtures.prefect import run_pending_job

    app, photo, style = pictures
    app.cli("catalog", "add", str(photo), "--role", "content")
    app.cli("catalog", "add", str(style), "--role", "style")
    app.cli("jobs", "add", "--content", "photo", "--style", "style", "--method", "noop", "--param", "size=40")
    artwork_id = run_pending_job(app)
    store = app.workshop().store
    with app.workshop().catalog.reader() as session:
        artwork = show_artwork(session, artwork_id)
    stored = store.path_for_uri(artwork["uri"])
    for output in (stored, next((tmp_path / "store").rglob(f"{sha256(photo)}.*"))):
        before = sha256(output)
        one_line_error(app.cli("reproduce", str(artwork_id), "-o", str(output), expect=None),
                       str(output), "choose another output path", after=1)  # after the plan's line
        assert sha256(output) == before
    refused = app.cli("reproduce", str(artwork_id), "-o", str(photo / "again.png"), expect=2)
    assert "photo.png is a file, not a folder" in refused.output.splitlines()[-1]

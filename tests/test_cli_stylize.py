"""`atelier stylize` end to end on package-shipped images: a tagged PNG of the right size, one
summary line, one-line errors with exit code 2, and no catalog or orchestrator imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from style_engine.color import chroma_error, rgb_to_yiq
from style_engine.images import image_to_tensor, resize_long_side

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("prefect", "boto3", "sqlalchemy")

# Runs the real console entry point and reports, at exit, which heavy packages got imported.
_RUN_CLI = f"""
import atexit, sys
atexit.register(lambda: print("HEAVY:" + ",".join(
    sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY_MODULES!r}))), file=sys.stderr))
from atelier.cli import app
app(prog_name="atelier")
"""


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ATELIER_DEVICE": "cpu"}
    return subprocess.run(
        [sys.executable, "-c", _RUN_CLI, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_stylize_writes_tagged_png_without_heavy_imports(
    tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    output = tmp_path / "out" / "result.png"
    args = ["stylize", str(content_path), str(style_path), "-o", str(output)]
    done = _run_cli(*args, "--size", "64", "--iterations", "4", "--seed", "3", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY:")]
    assert heavy == ["HEAVY:"], f"atelier stylize imported {heavy}"

    summary = done.stdout.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith(f"{output} 64x64 4 iterations ")
    assert "style=" in summary[0] and "content=" in summary[0]

    saved = Image.open(output)
    assert (saved.format, saved.mode, saved.size) == ("PNG", "RGB", (64, 64))
    params = json.loads(saved.text["atelier:params"])
    assert (params["size"], params["iterations"], params["seed"]) == (64, 4, 3)
    assert saved.text["atelier:seed"] == "3"
    assert saved.text["atelier:method"] == "gatys"
    assert json.loads(saved.text["atelier:styles"]) == [style_path.name]
    assert saved.text["atelier:torch_version"]


def test_luminance_mode_output_keeps_content_chroma(
    tmp_path: Path, content_path: Path, style_path: Path, content_image: Image.Image
) -> None:
    """Gatys et al. 2016, luminance-only transfer: the output's I and Q are the content's,
    within 1/255 of their range (8-bit rounding), while the luminance did change."""
    output = tmp_path / "luminance.png"
    result = CliRunner().invoke(
        app,
        ["stylize", str(content_path), str(style_path), "-o", str(output), "--size", "64",
         "--iterations", "5", "--preserve-color", "luminance", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    stylized = image_to_tensor(Image.open(output))
    content = image_to_tensor(resize_long_side(Image.open(content_path).convert("RGB"), 64))
    yiq_out, yiq_content = rgb_to_yiq(stylized.double()), rgb_to_yiq(content.double())
    iq_ranges = np.array([2 * 0.595716, 2 * 0.522591])
    iq_error = (yiq_out - yiq_content)[0, 1:].abs().flatten(1).max(dim=1).values.numpy()
    assert (iq_error <= iq_ranges / 255).all(), iq_error
    assert float((yiq_out - yiq_content)[0, 0].abs().mean()) > 0.005
    assert chroma_error(stylized, content) < 1e-3


@pytest.mark.parametrize(
    ("make_input", "problem"),
    [
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: _write(d / "empty.png", b""), "empty file"),
        (lambda d: _write(d / "notes.png", b"not an image\n" * 20), "not a readable image"),
        (lambda d: _tiny_png(d / "tiny.png"), "too small"),
    ],
)
def test_bad_style_input_exits_2_with_one_line_naming_the_file(
    tmp_path: Path, content_path: Path, make_input, problem: str
) -> None:
    bad = make_input(tmp_path)
    result = CliRunner().invoke(app, ["stylize", str(content_path), str(bad), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(bad) in lines[0] and problem in lines[0]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--size", "0"], "size"),
        (["--preserve-color", "lab"], "--preserve-color"),
        (["--style-weights", "0.5,abc"], "'abc' is not a number"),
        (["--style-weights", "0.5,0.5"], "2 given for 1 style"),
        (["--method", "magic"], "unknown"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, content_path: Path, style_path: Path, extra: list[str], problem: str
) -> None:
    args = ["stylize", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"), "--iterations", "1"]
    result = CliRunner().invoke(app, [*args, "--size", "64", "--device", "cpu", *extra])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], result.stderr


def test_output_must_be_an_image_format(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    result = CliRunner().invoke(app, ["stylize", str(content_path), str(style_path), "-o", str(tmp_path / "o.gif")])
    assert result.exit_code == 2 and "must end in .png, .jpg, .jpeg or .webp" in result.stderr


@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".webp", "WEBP")])
def test_jpeg_and_webp_outputs_keep_their_provenance(tmp_path: Path, content_path: Path, style_path: Path,
                                                     suffix: str, fmt: str) -> None:
    """Issue 14 item 18: -o out.jpg / out.webp with --quality; the parameters travel in EXIF."""
    from style_engine.images import read_exif_metadata

    sizes = {}
    for quality in (30, 95):
        output = tmp_path / f"q{quality}{suffix}"
        result = CliRunner().invoke(app, ["stylize", str(content_path), str(style_path), "-o", str(output),
                                          "--method", "noop", "--size", "96", "--quality", str(quality)])
        assert result.exit_code == 0, result.output
        saved = Image.open(output)
        assert saved.format == fmt and saved.size[0] == 96 or saved.size[1] == 96
        fields = read_exif_metadata(saved)
        assert json.loads(fields["atelier:params"])["size"] == 96 and fields["atelier:method"] == "noop"
        sizes[quality] = output.stat().st_size
    assert sizes[30] < sizes[95]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tiny_png(path: Path) -> Path:
    Image.new("RGB", (20, 20), (1, 2, 3)).save(path)
    return path

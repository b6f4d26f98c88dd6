"""Issue 13 items 7 and 8: inputs that used to give a traceback (or exit 0) are one line on
stderr with exit code 2, write nothing, and leave no stored object behind; on both databases."""

from __future__ import annotations

import pytest

from tests.test_cli_catalog import _error_line, _json, cli, gallery, pictures  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e

HUGE = "99999999999999999999"
ADD = ["jobs", "add", "--content", "city", "--style", "waves", "--method", "gatys", "--param"]

USER_ERRORS = [
    ([*ADD, "style_weight=Infinity"], "Infinity is not a finite number"),
    ([*ADD, "learning_rate=-Infinity"], "-Infinity is not a finite number"),
    ([*ADD, "content_weight=NaN"], "NaN is not a finite number"),
    ([*ADD, "tv_weight=1e400"], "parameter tv_weight: expected a finite number"),
    ([*ADD, "init=image"], "--param init=image: a job has no init image"),
    (["jobs", "show", HUGE], f"no job with id {HUGE}"),
    (["jobs", "cancel", "1", HUGE], f"no job with id {HUGE}"),
    (["runs", "show", HUGE], f"no run with id {HUGE}"),
    (["artworks", "show", HUGE], f"no artwork with id {HUGE}"),
    (["catalog", "show", HUGE], f"no image matches '{HUGE}'"),
    (["jobs", "ls", "--status", "bogus"], "unknown status 'bogus'"),
    (["runs", "ls", "--status", "bogus"], "unknown status 'bogus'"),
    (["jobs", "ls", "--content", HUGE], f"no image matches '{HUGE}'"),
]


def test_bad_numbers_ids_and_statuses_are_one_line_with_exit_2(gallery):
    before = gallery("jobs", "ls", "--json").stdout
    for args, message in USER_ERRORS:
        result = gallery(*args, code=2)
        assert message in _error_line(result), (args, result.stderr)
    assert gallery("jobs", "ls", "--json").stdout == before


def test_text_longer_than_its_column_is_refused_before_anything_is_stored(cli, pictures, tmp_path):
    photo = pictures / "content" / "city.png"
    for option, length in (("--artist", 301), ("--title", 501), ("--license", 201)):
        result = cli("catalog", "add", photo, "--role", "content", option, "x" * length, code=2)
        assert f"{option} is {length} characters long" in _error_line(result)
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*.png"))
    assert _json(cli("catalog", "ls", "--json")) == []
    assert _json(cli("catalog", "add", photo, "--role", "content", "--artist", "x" * 300, "--json"))[0]["status"] == "added"


def test_stylize_refuses_an_infinite_weight_without_blaming_the_precision(tmp_path, content_path, style_path):
    from typer.testing import CliRunner

    from atelier.cli import app

    for option in (["--style-weight", "inf"], ["--content-weight", "nan"], ["--style-weights", "inf"]):
        result = CliRunner().invoke(app, ["stylize", str(content_path), str(style_path), "-o",
                                          str(tmp_path / "o.png"), "--size", "32", *option])
        assert result.exit_code == 2, (option, result.output)
        line = _error_line(result)
        assert "finite" in line and "fp32" not in line, option


def test_stylize_logs_every_tenth_when_stderr_is_no_terminal(tmp_path, content_path, style_path):
    """Issue 14 item 9: a log file gets a line at each 10 %, not nine silent minutes."""
    from tests.test_cli_stylize import _run_cli

    done = _run_cli("stylize", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"),
                    "--size", "32", "--iterations", "20", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stderr.splitlines() if "stylizing: step" in line]
    assert 8 <= len(steps) <= 12 and "(100%)" in steps[-1], done.stderr


def test_rerun_failed_of_an_unknown_job_is_a_user_error(gallery):
    for ids in (["404"], ["1", HUGE]):
        args = [arg for job_id in ids for arg in ("--job", job_id)]
        result = gallery("jobs", "rerun-failed", *args, code=2)
        assert f"no job with id {ids[-1]}" in _error_line(result)


def test_catalog_add_says_which_files_of_a_folder_it_skipped_and_why(cli, pictures):
    folder = pictures / "content"
    (folder / ".hidden.png").write_bytes((folder / "city.png").read_bytes())
    (folder / ".cache").mkdir()
    (folder / ".cache" / "thumb.png").write_bytes(b"x")
    (folder / "notes.txt").write_text("not a picture")
    result = cli("catalog", "add", folder, "--role", "content")
    assert "2 added, 3 skipped" in result.stdout
    text = " ".join(result.stdout.split())
    assert ".hidden.png: hidden" in text and "thumb.png: hidden" in text and "notes.txt: not an image suffix (.txt)" in text
    outcomes = _json(cli("catalog", "add", folder, "--role", "content", "--json"))
    assert sorted(o["status"] for o in outcomes) == ["duplicate", "duplicate", "skipped", "skipped", "skipped"]

"""`atelier config` shows the effective settings and never a password."""

import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.settings import get_settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://bob:hunter2@db:5432/atelier", "bob:***@db:5432/atelier"),
        ("postgresql+psycopg://bob@db:5432/atelier?password=hunter2", "bob@db:5432/atelier?password=***"),
    ],
)
def test_config_prints_settings_from_the_environment_with_the_password_masked(monkeypatch, url, shown):
    """Every form of password (issue 13 item 5; the forms themselves: tests/test_redaction.py)."""
    monkeypatch.setenv("ATELIER_DATABASE_URL", url)
    monkeypatch.setenv("ATELIER_GPU_SLOTS", "3")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert shown in result.output
    assert any("gpu_slots" in line and "3" in line for line in result.output.splitlines())


def test_config_prints_a_long_url_whole_on_one_line(monkeypatch):
    """Issue 13 item 8: URLs are never wrapped (at 80 columns either)."""
    url = "s3://a-rather-long-bucket-name-for-the-gallery/with/a/deep/prefix/for/artifacts/of/the/night"
    monkeypatch.setenv("ATELIER_STORE_URL", url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "80"})
    finally:
        get_settings.cache_clear()
    assert any(line.split() == ["store_url", url] for line in result.output.splitlines()), result.output


def test_config_and_error_lines_never_show_the_web_token(monkeypatch):
    """The web token is a secret like a URL's password: `config` masks it, and an error line
    that happens to quote it (a driver echoing input, say) has it masked too."""
    from atelier.console import hide_secrets

    monkeypatch.setenv("ATELIER_WEB_TOKEN", "s3cr3t-t0ken")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "200"})
        hidden = hide_secrets("bad request carrying s3cr3t-t0ken")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "s3cr3t-t0ken" not in result.output
    assert any(line.split() == ["web_token", "***"] for line in result.output.splitlines()), result.output
    assert hidden == "bad request carrying ***"

"""`atelier config` shows the effective settings and never a password."""

import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.settings import get_settings, mask_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://bob:hunter2@db:5432/atelier", "postgresql+psycopg://bob:***@db:5432/atelier"),
        ("postgresql+psycopg://bob@db/atelier", "postgresql+psycopg://bob@db/atelier"),
        ("sqlite:///./.atelier/catalog.db", "sqlite:///./.atelier/catalog.db"),
        (None, None),
    ],
)
def test_mask_url_hides_only_the_password(url, masked):
    assert mask_url(url) == masked


def test_config_prints_settings_from_the_environment_with_the_password_masked(monkeypatch):
    monkeypatch.setenv("ATELIER_DATABASE_URL", "postgresql+psycopg://bob:hunter2@db:5432/atelier")
    monkeypatch.setenv("ATELIER_GPU_SLOTS", "3")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "bob:***@db:5432/atelier" in result.output
    assert any("gpu_slots" in line and "3" in line for line in result.output.splitlines())

"""Issue 14 item 14: a catalog command run where there is no catalog says so, and creates
nothing; only `catalog add`, `db upgrade` and `demo` create a catalog, on purpose."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.settings import get_settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A folder with no catalog, and the default (relative) settings."""
    for name in ("ATELIER_DATABASE_URL", "ATELIER_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("args", [["catalog", "ls"], ["jobs", "ls"], ["runs", "ls"], ["artworks", "ls"],
                                  ["runs", "stats"], ["jobs", "show", "1"], ["catalog", "show", "x"],
                                  ["jobs", "cancel", "1"], ["gallery", "run"], ["jobs", "rerun-failed"]])
def test_commands_outside_a_catalog_say_so_and_create_nothing(elsewhere, args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "no catalog at sqlite:///./.atelier/catalog.db" in line and "ATELIER_DATABASE_URL" in line
    assert not (elsewhere / ".atelier").exists()


def test_db_upgrade_creates_the_catalog_on_purpose(elsewhere):
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    result = CliRunner().invoke(app, ["catalog", "ls"])
    assert result.exit_code == 0 and "no images match" in result.stdout

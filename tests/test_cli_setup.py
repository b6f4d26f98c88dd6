"""Issue 14 item 15: `atelier db create`, `atelier store create-bucket` and `atelier setup`
create the PostgreSQL database and the S3 bucket (real PostgreSQL, S3 over loopback), and
are safe to run again."""

from __future__ import annotations

import secrets
import uuid

import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.settings import get_settings
from tests.fixtures.databases import POSTGRES_ADMIN_URL, drop_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture
def settings_env(monkeypatch):
    def configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"ATELIER_{name.upper()}", value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def _run(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


@pytest.mark.postgres
def test_setup_creates_the_postgres_database_and_the_bucket(settings_env, s3_server, tmp_path):
    from sqlalchemy.engine import make_url

    name = f"atelier_setup_{secrets.token_hex(4)}"
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    bucket = f"atelier-setup-{uuid.uuid4().hex[:8]}"
    settings_env(database_url=url, store_url=f"s3://{bucket}/art", s3_endpoint_url=s3_server.endpoint_url)
    try:
        _run("catalog", "ls", code=2)  # no database yet: a one-line error, nothing created
        assert "created" in _run("db", "create") and "already exists" in _run("db", "create")
        assert "created" in _run("store", "create-bucket")
        assert bucket in [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
        out = _run("setup")
        assert f"database {url} already exists" in out and "upgraded from (empty) to" in out
        assert f"store s3://{bucket}/art at {s3_server.endpoint_url} already exists" in out
        assert "no images match" in _run("catalog", "ls")
    finally:
        drop_postgres_database(url)


def test_setup_on_the_embedded_defaults(settings_env, tmp_path):
    settings_env(database_url=f"sqlite:///{tmp_path / 'new' / 'catalog.db'}", store_url=f"file://{tmp_path / 'store'}")
    out = _run("setup")
    assert "created" in out and (tmp_path / "store").is_dir()
    assert "no images match" in _run("catalog", "ls")
    assert out.count("already exists") == 0 and _run("setup").count("already") == 3

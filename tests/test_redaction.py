"""Every form of URL credential is masked by the one function, wherever a URL is shown:
`atelier config`, `atelier db upgrade`, the flows' "using catalog" line and error messages."""

import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.settings import get_settings
from redaction import mask_url, redact

SECRET = "hunter2"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://bob:hunter2@db:5432/atelier", "postgresql+psycopg://bob:***@db:5432/atelier"),
        ("postgresql+psycopg://bob@db/atelier", "postgresql+psycopg://bob@db/atelier"),
        ("postgresql+psycopg://bob@db/atelier?password=hunter2", "postgresql+psycopg://bob@db/atelier?password=***"),
        ("postgresql://db/atelier?sslmode=require&password=hunter2&application_name=x",
         "postgresql://db/atelier?sslmode=require&password=***&application_name=x"),
        ("postgresql://db/a?sslpassword=hunter2", "postgresql://db/a?sslpassword=***"),
        ("postgresql+psycopg://bob:hun@ter2@db/atelier", "postgresql+psycopg://bob:***@db/atelier"),
        ("postgresql+psycopg://bob:hun%40ter2@db/atelier", "postgresql+psycopg://bob:***@db/atelier"),
        ("postgresql://bob:hu:nt/er2@db/atelier", "postgresql://bob:***@db/atelier"),
        ("https://hunter2@minio.internal:9000", "https://***@minio.internal:9000"),
        ("https://minio.internal:9000/?X-Amz-Signature=hunter2", "https://minio.internal:9000/?X-Amz-Signature=***"),
        ("s3://bucket/prefix?access_key=hunter2", "s3://bucket/prefix?access_key=***"),
        ("sqlite:///./.atelier/catalog.db", "sqlite:///./.atelier/catalog.db"),
        ("sqlite:////tmp/odd@name.db", "sqlite:////tmp/odd@name.db"),
        ("file://./.atelier/artifacts", "file://./.atelier/artifacts"),
        (None, None),
        ("", ""),
    ],
)
def test_mask_url_hides_every_credential_form(url, masked):
    assert mask_url(url) == masked
    if url and SECRET in url.replace("%40", "@"):
        assert "ter2" not in mask_url(url)


@pytest.mark.unit
@pytest.mark.parametrize(
    "url",
    ["postgresql://bob:hun@ter2@db/x", "postgresql://bob:hun%40ter2@db/x", "postgresql://db/x?password=hun@ter2"],
)
def test_redact_removes_raw_and_decoded_secrets_from_driver_messages(url):
    message = 'connection to server at "ter2@db" failed for password "hun@ter2"; url ' + url
    assert "hun@ter2" not in redact(message, [url]) and "hun%40ter2" not in redact(message, [url])


@pytest.mark.integration
@pytest.mark.postgres
def test_db_upgrade_masks_a_query_parameter_password(postgres_url, monkeypatch):
    monkeypatch.setenv("ATELIER_DATABASE_URL", f"{postgres_url}?password={SECRET}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "password=***" in result.output


@pytest.mark.integration
def test_unreachable_catalog_error_hides_a_password_with_an_unescaped_at(monkeypatch):
    monkeypatch.setenv("ATELIER_DATABASE_URL", "postgresql+psycopg://bob:hun@ter2@127.0.0.1:1/atelier")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["catalog", "ls"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "ter2" not in result.output and "hun" not in result.output.replace("hunt", "")
    assert "error:" in result.output


@pytest.mark.unit
def test_flow_log_line_masks_a_query_parameter_password():
    from tasks.workshop import WorkshopConfig

    config = WorkshopConfig(database_url="postgresql://bob@db/a?password=hunter2", store_url="file://x",
                            s3_endpoint_url=None, cache_dir="c", device="cpu", weights="caffe",
                            max_image_pixels=1, lease_seconds=10, gpu_slots=1, host="h", slot_dir="s",
                            task_retries=0, retry_delay_seconds=0, segment_frames=240)
    assert SECRET not in config.describe() and "password=***" in config.describe()

"""The CLI's settings extend the worker's: read from one environment, they open the same workshop."""

from __future__ import annotations

import pytest

from atelier.settings import get_settings
from tasks.workshop import WorkshopConfig
from worker_settings import read_worker_settings

pytestmark = pytest.mark.unit


def test_cli_and_worker_settings_agree_on_empty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty variable means unset for both: a CLI command and a flow in one process then share
    # one catalog engine and store (tasks.workshop caches workshops by their config).
    for name in ("S3_ENDPOINT_URL", "STORE_PUBLIC_URL", "WEB_URL", "WEB_TOKEN", "PREFECT_UI_URL"):
        monkeypatch.setenv(f"ATELIER_{name}", "")
    get_settings.cache_clear()
    try:
        cli, worker = get_settings(), read_worker_settings()
        assert (cli.s3_endpoint_url, cli.store_public_url, cli.web_url, cli.web_token, cli.prefect_ui_url) == (None,) * 5
        assert WorkshopConfig.from_settings(cli) == WorkshopConfig.from_settings(worker)
        assert worker.s3_endpoint_url is None
    finally:
        get_settings.cache_clear()

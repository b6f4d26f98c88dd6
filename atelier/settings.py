"""The one place the CLI reads the environment.

Settings are read once at the edges (the CLI here, the flows through `worker_settings` when a
Prefect worker starts them); everything below receives explicit values, so that tests and
library users never depend on ambient state.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import field_validator

from worker_settings import WorkerSettings


class Settings(WorkerSettings):
    """The worker's settings (catalog, store, device, limits, retries), and those only the
    command line uses: the schedule `atelier serve` gives the nightly gallery, and the
    gallery web app's links and write token (a worker never sees the token)."""

    nightly_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    # The gallery web app (`atelier web`): the Prefect UI's address, for links to flow runs
    # (e.g. http://127.0.0.1:4200), and the token that turns on its write actions (off when unset).
    prefect_ui_url: str | None = None
    web_token: str | None = None

    # Named apart from WorkerSettings' validator: a same-named one here would replace it, and the
    # worker fields (s3_endpoint_url, store_public_url, web_url) would keep "" where workers see None.
    @field_validator("prefect_ui_url", "web_token", mode="before")
    @classmethod
    def _cli_empty_is_none(cls, value: object) -> object:
        return value or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

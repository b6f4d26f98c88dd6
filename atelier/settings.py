"""The one place that reads the environment.

Settings are read once at the edges (the CLI and flow entry points); everything below
receives explicit values, so that tests and library users never depend on ambient state.
"""

from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from redaction import mask_url  # noqa: F401  (the one masking rule; re-exported for callers of settings)


class Settings(BaseSettings):
    """Effective configuration, from `ATELIER_*` variables and an optional `.env` file.

    S3 credentials are deliberately absent: boto3 takes them from the standard AWS chain,
    so they can never leak into the catalog, the logs or `atelier config`.
    """

    model_config = SettingsConfigDict(env_prefix="ATELIER_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./.atelier/catalog.db"
    store_url: str = "file://./.atelier/artifacts"
    s3_endpoint_url: str | None = None
    # A permanent web address at which the store's objects are served (a public bucket, a CDN,
    # or a web server over the local store's folder); dashboard artifacts link pictures there.
    store_public_url: str | None = None
    cache_dir: str = "./.atelier/cache"
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    gpu_slots: int = Field(default=1, ge=1)
    # This machine's name for its GPU slots, runs and workers; empty: the hostname. Two
    # workers on one machine with different names act as two hosts.
    host: str = ""
    # Where each host keeps one lock file per GPU slot (one folder per host name).
    slot_dir: str = str(Path(tempfile.gettempdir()) / "atelier-gpu-slots")
    vgg_weights: str = "caffe"
    max_image_pixels: int = Field(default=64_000_000, ge=1)
    lease_seconds: int = Field(default=1800, ge=10)
    # Retries of a job's task after a transient failure (store, network, database),
    # with exponential backoff starting at retry_delay_seconds.
    task_retries: int = Field(default=3, ge=0)
    retry_delay_seconds: float = Field(default=10.0, ge=0)
    nightly_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    work_pool: str = "atelier"
    # The gallery web app (`atelier web`): the Prefect UI's address, for links to flow runs
    # (e.g. http://127.0.0.1:4200), and the token that turns on its write actions (off when unset).
    prefect_ui_url: str | None = None
    web_token: str | None = None
    # Where the gallery web app is served for the people who read the Prefect artifacts (e.g.
    # https://gallery.example.org); a gallery run's artifacts then link to its artwork pages.
    web_url: str | None = None

    @field_validator("host")
    @classmethod
    def _host_is_a_plain_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError(f"ATELIER_HOST {value!r}: use letters, digits, '.', '_' and '-' only")
        return value

    @field_validator("s3_endpoint_url", "store_public_url", "prefect_ui_url", "web_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


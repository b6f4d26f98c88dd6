"""What a process that runs jobs needs to know, read from `ATELIER_*` variables (and `.env`).

A leaf below the flows and the CLI: a Prefect worker starts a flow from its entry point
(`flows/gallery.py:gallery`) with no CLI around it, so the flows read their settings here,
on the machine that runs them, and never through flow parameters (the database URL may
carry a password). The CLI's settings (`atelier.settings.Settings`) extend these, so each
setting and its default are declared once. pydantic-settings only; nothing of ours.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """Where the catalog and the store are, and how jobs run on this machine.

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
    # Where the gallery web app is served for the people who read the Prefect artifacts (e.g.
    # https://gallery.example.org); a gallery run's artifacts then link to its artwork pages.
    web_url: str | None = None
    # One cache per user, not per working folder: commands run elsewhere (`stylize`, `reproduce`)
    # neither scatter `.atelier/cache` folders nor see another copy of an object than their neighbour.
    cache_dir: str = Field(default_factory=lambda: user_cache_dir())
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
    # A video job longer than this many frames is planned into segments (of at most this
    # many frames, cut at its shots) that every host of the fleet takes up (README, "Films
    # across the fleet"); a shorter one renders as one piece.
    segment_frames: int = Field(default=240, ge=2)
    # Retries of a job's task after a transient failure (store, network, database),
    # with exponential backoff starting at retry_delay_seconds.
    task_retries: int = Field(default=3, ge=0)
    retry_delay_seconds: float = Field(default=10.0, ge=0)

    @field_validator("host")
    @classmethod
    def _host_is_a_plain_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError(f"ATELIER_HOST {value!r}: use letters, digits, '.', '_' and '-' only")
        return value

    @field_validator("s3_endpoint_url", "store_public_url", "web_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None


def user_cache_dir() -> str:
    """The platform's folder for a user's caches, with `atelier` under it: `$XDG_CACHE_HOME`
    or `~/.cache` (Linux and the like), `~/Library/Caches` (macOS), `%LOCALAPPDATA%` (Windows)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "atelier")


def read_worker_settings() -> WorkerSettings:
    """The settings as the environment holds them now: read at each flow run's start, not
    cached, so that a long-lived worker (and a test) sees a changed environment."""
    return WorkerSettings()

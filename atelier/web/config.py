"""What the web app needs to know, handed in explicitly (settings are read by `atelier web`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WebConfig:
    """Where the catalog and the store are, where Prefect's UI is, and the write token.

    `write_token` None turns every write action off (they answer 403). `cache_dir` keeps the
    artworks' zoom tiles (None: a temporary folder for the life of the app).
    """

    database_url: str
    store_url: str
    s3_endpoint_url: str | None = None
    prefect_ui_url: str | None = None
    write_token: str | None = None
    page_size: int = 24
    cache_dir: Path | None = None
    tile_size: int = 256

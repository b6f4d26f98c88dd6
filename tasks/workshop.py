"""What a worker process keeps between jobs: the open catalog, the store, the caches.

Opening the catalog, loading VGG-19 and computing a style's Gram targets cost far more
than a small job, so they live as long as the process (a `serve` or worker process runs
many flow runs) and are shared by every job that runs in it.

Settings (`worker_settings`) are turned into a `WorkshopConfig` at the flow's entry point; everything below
receives the Workshop explicitly and never reads the environment.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redaction import mask_url
from tasks.provenance import host_name

if TYPE_CHECKING:
    from db.session import Catalog
    from storage.base import ArtifactStore
    from style_engine.gatys.render import StyleTargetCache
    from tasks.input_cache import InputCache
    from worker_settings import WorkerSettings


@dataclass(frozen=True)
class WorkshopConfig:
    """The settings a worker needs, frozen so that it can key the per-process cache.

    It holds the database URL, which may carry a password: it is never a Prefect
    parameter and its repr masks it.
    """

    database_url: str = field(repr=False)
    store_url: str
    s3_endpoint_url: str | None
    cache_dir: str
    device: str
    weights: str
    max_image_pixels: int
    lease_seconds: int
    gpu_slots: int
    host: str
    slot_dir: str
    task_retries: int
    retry_delay_seconds: float
    segment_frames: int

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> WorkshopConfig:
        return cls(
            database_url=settings.database_url,
            store_url=settings.store_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            cache_dir=settings.cache_dir,
            device=settings.device,
            weights=settings.vgg_weights,
            max_image_pixels=settings.max_image_pixels,
            lease_seconds=settings.lease_seconds,
            gpu_slots=settings.gpu_slots,
            host=settings.host or host_name(),
            slot_dir=settings.slot_dir,
            task_retries=settings.task_retries,
            retry_delay_seconds=settings.retry_delay_seconds,
            segment_frames=settings.segment_frames,
        )

    def describe(self) -> str:
        """A log line naming the services, with any password masked."""
        return f"catalog {mask_url(self.database_url)}, store {self.store_url}, device {self.device}"


class Workshop:
    """The open services and caches of one worker process (see the module docstring)."""

    def __init__(self, config: WorkshopConfig) -> None:
        from db import open_catalog
        from storage import open_store
        from style_engine.device import resolve_device
        from style_engine.gatys.render import StyleTargetCache
        from tasks.input_cache import InputCache

        self.config = config
        self.catalog: Catalog = open_catalog(config.database_url)
        self.store: ArtifactStore = open_store(config.store_url, endpoint_url=config.s3_endpoint_url)
        self.inputs: InputCache = InputCache(config.cache_dir, self.store)
        self.style_targets: StyleTargetCache = StyleTargetCache()
        self.device: str = str(resolve_device(config.device))
        self.host: str = config.host
        self.worker: str = f"{self.host}:{os.getpid()}"

    def __repr__(self) -> str:
        return f"Workshop({self.config.describe()})"


_workshops: dict[WorkshopConfig, Workshop] = {}
_workshops_lock = threading.Lock()


def workshop_for(config: WorkshopConfig) -> Workshop:
    """The process's Workshop for `config`, opened on first use."""
    with _workshops_lock:
        workshop = _workshops.get(config)
        if workshop is None:
            workshop = _workshops[config] = Workshop(config)
        return workshop


def close_workshops() -> None:
    """Dispose of every open catalog (tests switch databases; a process exit needs nothing)."""
    with _workshops_lock:
        for workshop in _workshops.values():
            workshop.catalog.dispose()
        _workshops.clear()

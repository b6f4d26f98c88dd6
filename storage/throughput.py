"""Put/get throughput of any store, for `bench/catalog.py` and for sizing a deployment."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from storage.base import ArtifactStore

MB = 1_000_000


@dataclass(frozen=True)
class Throughput:
    """Seconds for one verified put and one verified get of `size` bytes."""

    size: int
    put_seconds: float
    get_seconds: float

    @property
    def put_mb_s(self) -> float:
        return self.size / MB / self.put_seconds

    @property
    def get_mb_s(self) -> float:
        return self.size / MB / self.get_seconds


def measure_throughput(store: ArtifactStore, size: int) -> Throughput:
    """Time a put and a get of `size` fresh random bytes.

    The bytes are random because the store is content-addressed: a repeated payload
    would be recognised and never uploaded, and the benchmark would time a HEAD.
    Both timings include hashing, as production calls do.
    """
    data = os.urandom(size)
    started = time.perf_counter()
    stored = store.put_bytes(data, suffix=".bin")
    uploaded = time.perf_counter()
    store.get_bytes(stored.uri, sha256=stored.sha256)
    downloaded = time.perf_counter()
    return Throughput(size, uploaded - started, downloaded - uploaded)

"""Orchestration overhead per job: 200 no-op jobs through the real gallery flow.

The no-op method skips the network (output = the content resized), so what remains is the
cost of running a job at all: Prefect's task runs, the catalog's claims and records, the
store's fetches and uploads, and decoding/encoding the small images. Each is timed by
wrapping the Workshop's catalog and store (and the image helpers); Prefect's share is the
rest of the wall time. Two set-ups: SQLite + local folder, and PostgreSQL + S3 (moto's
server on loopback). Prefect runs against a temporary local server, as in the tests.

    .venv/bin/python bench/orchestration.py [--jobs 200]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

POSTGRES_ADMIN_URL = os.environ.get("ATELIER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Clock:
    """Thread-safe accumulated seconds per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] += time.perf_counter() - started

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return function(*args, **kwargs)

        return wrapper


class TimedCatalog:
    """The catalog, with the time spent inside its transactions counted."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner, self._clock = inner, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def session(self) -> Iterator[Any]:
        with self._clock.phase("catalog"), self._inner.session() as session:
            yield session

    @contextmanager
    def reader(self) -> Iterator[Any]:
        with self._clock.phase("catalog"), self._inner.reader() as session:
            yield session


class TimedStore:
    """The artifact store, with every call counted."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner, self._clock = inner, clock

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        return self._clock.timed("store", attribute) if callable(attribute) else attribute


def instrument(workshop: Any, clock: Clock) -> None:
    """Count catalog, store and image time of everything this Workshop does."""
    import style_engine.images as images
    import style_engine.methods as methods

    workshop.catalog = TimedCatalog(workshop.catalog, clock)
    workshop.store = TimedStore(workshop.store, clock)
    workshop.inputs.fetch = clock.timed("store", workshop.inputs.fetch)  # local cache reads included
    for name in ("load_image", "png_bytes", "thumbnail"):
        setattr(images, name, clock.timed("images", getattr(images, name)))
    methods.run_method = clock.timed("images", methods.run_method)  # the no-op "engine": a resize


def seed_jobs(database_url: str, store: Any, count: int) -> None:
    """One photo, one style, `count` distinct no-op jobs (they differ by output size)."""
    import skimage.data
    from PIL import Image

    from db.images import register_image
    from db.jobs import add_job
    from db.migrate import upgrade
    from db.session import open_catalog

    upgrade(database_url)
    catalog = open_catalog(database_url)
    ids = []
    for role, array in (("content", skimage.data.astronaut()), ("style", skimage.data.coffee())):
        picture = Image.fromarray(array).convert("RGB")
        picture.thumbnail((256, 256))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        stored = store.put_bytes(buffer.getvalue(), suffix=".png", content_type="image/png")
        with catalog.session() as session:
            image, _ = register_image(session, sha256=stored.sha256, role=role, uri=stored.uri, width=picture.width,
                                      height=picture.height, format="PNG", bytes=stored.size, title=role)
            session.flush()
            ids.append(image.id)
    with catalog.session() as session:
        for index in range(count):
            add_job(session, content_id=ids[0], style_ids=[ids[1]], method="noop", params={"size": 32 + index})
    catalog.dispose()


def measure(label: str, database_url: str, store_url: str, endpoint_url: str | None, jobs: int, workdir: Path) -> dict[str, Any]:
    from atelier.settings import get_settings
    from flows.gallery import gallery
    from storage import open_store
    from tasks.workshop import WorkshopConfig, close_workshops, workshop_for

    seed_jobs(database_url, open_store(store_url, endpoint_url=endpoint_url), jobs)
    os.environ.update(
        ATELIER_DATABASE_URL=database_url, ATELIER_STORE_URL=store_url, ATELIER_S3_ENDPOINT_URL=endpoint_url or "",
        ATELIER_CACHE_DIR=str(workdir / "cache"), ATELIER_DEVICE="cpu", ATELIER_GPU_SLOTS="1",
    )
    get_settings.cache_clear()
    clock = Clock()
    instrument(workshop_for(WorkshopConfig.from_settings(get_settings())), clock)
    started = time.perf_counter()
    report = gallery(limit=jobs)
    wall = time.perf_counter() - started
    close_workshops()
    assert len(report.succeeded) == jobs, report.headline()
    per_job = {name: 1000 * seconds / jobs for name, seconds in clock.seconds.items()}
    per_job["prefect"] = 1000 * wall / jobs - sum(per_job.values())
    return {"label": label, "wall": wall, "total": 1000 * wall / jobs, **per_job}


@contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin_url = make_url(POSTGRES_ADMIN_URL)
    name = f"atelier_bench_{secrets.token_hex(4)}"
    connect = dict(host=admin_url.host, port=admin_url.port or 5432, user=admin_url.username,
                   password=admin_url.password, dbname=admin_url.database, autocommit=True)
    with psycopg.connect(**connect) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**connect) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def loopback_s3() -> Iterator[tuple[str, str]]:
    import boto3
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="atelier-bench")
        yield "s3://atelier-bench/artifacts", endpoint
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()

    import logging

    from prefect.testing.utilities import prefect_test_harness

    logging.getLogger("prefect").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    rows = []
    with prefect_test_harness(server_startup_timeout=60), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows.append(measure("SQLite + local folder", f"sqlite:///{workdir / 'catalog.db'}",
                            f"file://{workdir / 'store'}", None, args.jobs, workdir / "a"))
        with postgres_database() as database_url, loopback_s3() as (store_url, endpoint):
            rows.append(measure("PostgreSQL + S3 (loopback)", database_url, store_url, endpoint, args.jobs, workdir / "b"))

    print(f"\norchestration overhead, {args.jobs} no-op jobs through the gallery flow, 1 slot")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, device cpu")
    print(f"{'set-up':28} {'wall s':>7} {'ms/job':>7} {'prefect':>8} {'catalog':>8} {'store':>7} {'images':>7}")
    for row in rows:
        print(f"{row['label']:28} {row['wall']:7.1f} {row['total']:7.1f} {row['prefect']:8.1f} "
              f"{row['catalog']:8.1f} {row['store']:7.1f} {row.get('images', 0.0):7.1f}")
    print("target: <= 100 ms/job with SQLite + local folder")


if __name__ == "__main__":
    main()

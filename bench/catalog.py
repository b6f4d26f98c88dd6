"""Catalog and store throughput: how many jobs per second the catalog can hand out and record.

Each worker process does what a real worker does per job, minus the image work:
claim a batch (lease), then per job `start_run` and `complete_run` (one Run and one
Artifact row, the job marked succeeded, in one transaction). Measured on SQLite and on
PostgreSQL with 1 and 4 worker processes, on a fresh catalog each time.

Then the artifact store's put/get throughput against a loopback S3 server (moto) for
1 MB and 50 MB objects, with the store's own code (hashing and verification included).

Usage: python bench/catalog.py [--jobs 10000] [--batch 20] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from db.claims import claim_jobs  # noqa: E402
from db.jobs import idempotency_key  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Artifact, Image, Job, JobStatus, JobStyle, Run  # noqa: E402
from db.runs import ArtifactRecord, complete_run, start_run  # noqa: E402
from db.session import open_catalog  # noqa: E402
from redaction import mask_url  # noqa: E402
from storage.base import ArtifactStore  # noqa: E402

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MB = 1_000_000


def seed_jobs(url: str, count: int) -> None:
    """Insert `count` pending jobs in bulk (seeding is not what is being measured)."""
    catalog = open_catalog(url)
    with catalog.session() as session:
        shas = [hashlib.sha256(name.encode()).hexdigest() for name in ("content", "style")]
        ids = [
            session.scalar(
                insert(Image).values(sha256=sha, role=role, uri=f"file:///bench/{role}.png", width=512, height=384,
                                     format="PNG", bytes=1000).returning(Image.id)
            )
            for sha, role in zip(shas, ("content", "style"))
        ]
        rows = []
        for i in range(count):
            params = {"size": 256, "seed": i}
            rows.append({"content_id": ids[0], "method": "noop", "params": params, "priority": 0,
                         "status": JobStatus.PENDING, "attempts": 0, "max_attempts": 3,
                         "idempotency_key": idempotency_key("noop", shas[0], [(shas[1], 1.0)], params)})
        session.execute(insert(Job), rows)
        job_ids = session.scalars(select(Job.id)).all()
        session.execute(insert(JobStyle), [{"job_id": j, "position": 0, "image_id": ids[1], "weight": 1.0}
                                           for j in job_ids])
    catalog.dispose()


def work(url: str, worker: str, batch: int, start: multiprocessing.synchronize.Event, done: multiprocessing.Queue) -> None:
    """Claim and record jobs until none are left; report how many this worker did."""
    catalog = open_catalog(url)
    start.wait()
    finished = 0
    while job_ids := claim_jobs(catalog, batch, worker, 600):
        for job_id in job_ids:
            run_id = start_run(catalog, job_id, worker, seed=job_id, versions={"atelier": "bench"},
                               device="cpu", host=platform.node())
            digest = hashlib.sha256(str(job_id).encode()).hexdigest()
            complete_run(catalog, run_id, worker, timings={"compute": 0.0}, metrics={"ssim_to_content": 0.5},
                         artifacts=[ArtifactRecord("output", f"file:///bench/{digest}.png", digest, 1000,
                                                   "image/png", 512, 384)])
            finished += 1
    catalog.dispose()
    done.put(finished)


def run_round(url: str, jobs: int, workers: int, batch: int) -> float:
    """Jobs per second for `workers` processes draining `jobs` fresh jobs."""
    upgrade(url)
    seed_jobs(url, jobs)
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    processes = [context.Process(target=work, args=(url, f"bench-{i}", batch, start, done)) for i in range(workers)]
    for process in processes:
        process.start()
    time.sleep(3)  # let every process import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    counts = [done.get(timeout=900) for _ in processes]
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join()
    check(url, jobs, sum(counts))
    return jobs / elapsed


def check(url: str, jobs: int, reported: int) -> None:
    """Every job done exactly once, with exactly one Run and one Artifact each."""
    catalog = open_catalog(url)
    with catalog.reader() as session:
        succeeded = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.SUCCEEDED))
        runs = session.scalar(select(func.count()).select_from(Run))
        artifacts = session.scalar(select(func.count()).select_from(Artifact))
    catalog.dispose()
    if not reported == succeeded == runs == artifacts == jobs:
        raise SystemExit(f"inconsistent: {reported=} {succeeded=} {runs=} {artifacts=} of {jobs}")


def postgres_database(admin_url: str) -> tuple[str, object]:
    """A throwaway database on the server; returns its URL and a function that drops it."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    name = f"atelier_bench_{secrets.token_hex(4)}"

    def connect():
        return psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                               password=admin.password, dbname=admin.database, autocommit=True)

    with connect() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return admin.set(database=name).render_as_string(hide_password=False), drop


def bench_catalog(args: argparse.Namespace) -> None:
    print(f"catalog: {args.jobs} jobs, claim batch {args.batch}, each: claim + start_run + complete_run "
          "(1 Run + 1 Artifact row)")
    for backend in ("sqlite", "postgresql"):
        for workers in (1, 4):
            if backend == "sqlite":
                folder = tempfile.mkdtemp(prefix="atelier-bench-")
                url, cleanup = f"sqlite:///{folder}/catalog.db", (lambda: None)
            else:
                url, cleanup = postgres_database(args.postgres)
            try:
                rate = run_round(url, args.jobs, workers, args.batch)
            finally:
                cleanup()
            print(f"  {backend:<10} {workers} worker{'s' if workers > 1 else ' '}: {rate:8.0f} jobs/s   "
                  f"({mask_url(url) if backend == 'postgresql' else 'WAL file'})", flush=True)


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


def bench_s3(repeats: int) -> None:
    """Put/get throughput of the S3 store against moto on loopback (medians of `repeats`)."""
    from tests.fixtures.s3 import DUMMY_AWS_ENV, LoopbackS3, free_port

    os.environ.update(DUMMY_AWS_ENV)
    from storage import open_store

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request otherwise
    server = LoopbackS3(free_port())
    server.start()
    try:
        server.client().create_bucket(Bucket="atelier-bench")
        store = open_store("s3://atelier-bench/bench", endpoint_url=server.endpoint_url)
        print(f"S3 store on loopback moto ({server.endpoint_url}), medians of {repeats}:")
        for size in (1 * MB, 50 * MB):
            results = [measure_throughput(store, size) for _ in range(repeats)]
            put = statistics.median(r.put_mb_s for r in results)
            get = statistics.median(r.get_mb_s for r in results)
            print(f"  {size // MB:>3} MB objects: put {put:7.1f} MB/s, get {get:7.1f} MB/s")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=20, help="jobs per claim")
    parser.add_argument("--postgres", default=os.environ.get("ATELIER_BENCH_POSTGRES_URL", POSTGRES_ADMIN_URL),
                        help="a database on the server to create the throwaway bench database from")
    parser.add_argument("--s3-repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    bench_catalog(args)
    bench_s3(args.s3_repeats)


if __name__ == "__main__":
    main()

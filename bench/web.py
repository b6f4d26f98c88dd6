"""Gallery page times on a catalog of 10,000 artworks, on SQLite and on PostgreSQL.

The catalog is filled with direct bulk inserts (seeding is not what is measured): 60 content
and 20 style images with tags and artists, and per artwork a succeeded job, its run (with
metrics, and a 200-point loss curve the size a real 300-evaluation run records) and its output
and thumbnail artifacts. Then, through the real app in-process (FastAPI's TestClient: routing,
queries, templates; no network), the median and p95 time of: the grid (first page, and a
deep page), a filtered grid (style and tag, slowest first), the grid ranked by a metric, and
an artwork page. Target: p95 under 100 ms.

Usage: python bench/web.py [--artworks 10000] [--requests 60] [--postgres ADMIN_URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import POSTGRES_ADMIN_URL, postgres_database  # noqa: E402  (bench/catalog.py, beside this file)
from sqlalchemy import insert, select, text  # noqa: E402

from db.jobs import idempotency_key  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Artifact, Image, ImageTag, Job, JobStyle, Run  # noqa: E402
from db.session import open_catalog  # noqa: E402

CONTENTS, STYLES, CHUNK = 60, 20, 1000
TARGET_P95_MS = 100.0


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def seed(url: str, artworks: int) -> None:
    """Images, then per artwork: a succeeded job, its run and two artifacts, in chunks."""
    catalog = open_catalog(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(0)
    with catalog.session() as session:
        images = []
        for i in range(CONTENTS + STYLES):
            role = "content" if i < CONTENTS else "style"
            images.append({"sha256": sha(f"image{i}"), "role": role, "uri": f"file:///bench/objects/{i}.png",
                           "width": 1024, "height": 768, "format": "PNG", "bytes": 10**6,
                           "title": f"{role} picture {i}", "artist": f"Artist {i % 7}", "source_name": f"{role}{i}.png",
                           "created_at": start})
        ids = list(session.scalars(insert(Image).returning(Image.id, sort_by_parameter_order=True), images))
        session.execute(insert(ImageTag), [{"image_id": image_id, "tag": f"tag{n % 5}"} for n, image_id in enumerate(ids)])
    contents, styles = ids[:CONTENTS], ids[CONTENTS:]
    curve_steps = list(range(1, 301, 3))[:200]
    for first in range(0, artworks, CHUNK):
        count = min(CHUNK, artworks - first)
        with catalog.session() as session:
            jobs, pairs = [], []
            for n in range(first, first + count):
                content, style = contents[n % CONTENTS], styles[(n // CONTENTS) % STYLES]
                params = {"size": 512, "iterations": 300, "seed": n}
                when = start + timedelta(minutes=n)
                jobs.append({"content_id": content, "method": "gatys", "params": params, "status": "succeeded",
                             "attempts": 1, "idempotency_key": idempotency_key("gatys", sha(str(content)),
                                                                               [(sha(str(style)), 1.0)], params),
                             "created_at": when, "updated_at": when})
                pairs.append((style, when, params))
            job_ids = list(session.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), jobs))
            session.execute(insert(JobStyle), [{"job_id": j, "position": 0, "image_id": s, "weight": 1.0}
                                               for j, (s, _, _) in zip(job_ids, pairs, strict=True)])
            runs = []
            for job_id, (_, when, params) in zip(job_ids, pairs, strict=True):
                total = rng.uniform(1e4, 1e6)
                curve = {"evaluation": curve_steps, **{k: [total / (1 + s / 10) for s in curve_steps]
                                                       for k in ("total", "content", "style")}}
                runs.append({"job_id": job_id, "attempt": 1, "status": "succeeded", "worker": "bench", "params": params,
                             "seed": params["seed"], "versions": {"torch": "2.14.1", "weights_sha256": sha("w")},
                             "device": "cpu", "host": "bench", "started_at": when, "finished_at": when,
                             "duration_s": rng.uniform(10, 200), "timings": {"load": 0.1, "compute": 50.0, "upload": 0.2},
                             "metrics": {"ssim_to_content": rng.random(), "style_loss_drop": rng.uniform(1, 200)},
                             "loss_curve": curve, "flow_run_id": sha(str(first))[:36]})
            run_ids = list(session.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True), runs))
            artifacts = []
            for run_id, job_id, (_, when, _) in zip(run_ids, job_ids, pairs, strict=True):
                for kind, suffix in (("output", "o"), ("thumbnail", "t")):
                    digest = sha(f"{run_id}{suffix}")
                    artifacts.append({"run_id": run_id, "job_id": job_id, "kind": kind, "sha256": digest,
                                      "uri": f"file:///bench/objects/{digest[:2]}/{digest}.png", "bytes": 10**5,
                                      "content_type": "image/png", "width": 512, "height": 384, "created_at": when})
            session.execute(insert(Artifact), artifacts)
    with catalog.session() as session:  # fresh planner statistics, as autovacuum / a running catalog has them
        session.execute(text("ANALYZE"))
    catalog.dispose()


def timed(get: Callable[[str], object], paths: list[str]) -> tuple[float, float]:
    """Median and p95 in ms of GET `paths` (each answered 200), after two warm-up requests."""
    for path in paths[:2]:
        get(path)
    times = []
    for path in paths:
        began = time.perf_counter()
        response = get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def measure(url: str, artworks: int, requests: int) -> list[tuple[str, float, float]]:
    from fastapi.testclient import TestClient

    from atelier.web.app import create_app
    from atelier.web.config import WebConfig

    with tempfile.TemporaryDirectory() as store:
        client = TestClient(create_app(WebConfig(database_url=url, store_url=f"file://{store}")))
        catalog = open_catalog(url)
        with catalog.reader() as session:
            output_ids = list(session.scalars(select(Artifact.id).where(Artifact.kind == "output")))
        catalog.dispose()
        rng = random.Random(1)
        pages = {
            "grid, first page": ["/"] * requests,
            "grid, page 200": ["/?page=200"] * requests,
            "filtered grid (style + tag, slowest first)": [f"/?style=style+picture+{60 + i % STYLES}&tag=tag{i % 5}"
                                                         f"&sort=slowest" for i in range(requests)],
            "grid ranked by ssim_to_content": ["/?metric=ssim_to_content"] * requests,
            "artwork page": [f"/artworks/{rng.choice(output_ids)}" for _ in range(requests)],
        }
        return [(name, *timed(client.get, paths)) for name, paths in pages.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artworks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--postgres", default=os.environ.get("ATELIER_BENCH_POSTGRES_URL", POSTGRES_ADMIN_URL))
    args = parser.parse_args()
    print(f"gallery pages: {args.artworks} artworks, {args.requests} requests per page, in-process TestClient; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; target p95 < {TARGET_P95_MS:.0f} ms")
    for backend in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as scratch:
            cleanup = None
            if backend == "sqlite":
                url = f"sqlite:///{scratch}/catalog.db"
            else:
                url, cleanup = postgres_database(args.postgres)
            try:
                upgrade(url)
                began = time.perf_counter()
                seed(url, args.artworks)
                print(f"\n{backend}: seeded in {time.perf_counter() - began:.1f} s")
                print(f"  {'page':44} {'median ms':>10} {'p95 ms':>8}   (load average {os.getloadavg()[0]:.1f})")
                for name, median, p95 in measure(url, args.artworks, args.requests):
                    flag = "" if p95 < TARGET_P95_MS else "  over target"
                    print(f"  {name:44} {median:10.1f} {p95:8.1f}{flag}", flush=True)
            finally:
                if cleanup:
                    cleanup()


if __name__ == "__main__":
    main()

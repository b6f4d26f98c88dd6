"""Fleet throughput: does a second worker double the work done, and how fast can many workers claim?

1. Small CPU-bound jobs (a Gatys stylization at 32 px, 5 evaluations, one torch thread) run by
   1 and then 2 worker processes, each pinned to a core of its own, through the real
   PostgreSQL catalog: claim one job (lease), open its Run, compute, record it succeeded.
   Reported as jobs/s by the wall clock, and by CPU time (jobs per CPU-second of the workers,
   times the workers): on a machine that others share, the wall clock also counts the time
   the workers waited for a core, and the CPU figure says what they would do on cores of
   their own. Target: 2 workers >= 1.7x one.
2. The claim rate with 8 worker processes over 1,000 no-op jobs: claims/s (claim only, one
   job per claim), and jobs/s when each claim is followed by start_run + complete_run
   (bench/catalog.py's worker).

The load average is printed beside the figures: CPU timings on a shared machine are noisy.

Usage: python bench/fleet.py [--cpu-jobs 16] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalog import POSTGRES_ADMIN_URL, postgres_database, run_round, seed_jobs  # noqa: E402
from db.claims import claim_jobs  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.runs import complete_run, start_run  # noqa: E402
from db.session import open_catalog  # noqa: E402

CPU_JOB = {"size": 32, "iterations": 5}


def load_average() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_worker(url: str, worker: str, core: int | None, start: multiprocessing.synchronize.Barrier,
               done: multiprocessing.Queue) -> None:
    """Claim, stylize and record jobs one at a time until none are left; report (jobs, CPU seconds)."""
    import numpy as np
    import torch
    from PIL import Image

    from style_engine.gatys.render import StyleTargetCache
    from style_engine.methods import run_method

    if core is not None:
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    content, style = (Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(2))
    cache = StyleTargetCache()
    run_method("gatys", content, [style], CPU_JOB, cache=cache, style_keys=["style"])  # load VGG, warm up
    catalog = open_catalog(url)
    start.wait()
    cpu_began, finished = time.process_time(), 0
    while job_ids := claim_jobs(catalog, 1, worker, 600):
        run_id = start_run(catalog, job_ids[0], worker, device="cpu", host=worker)
        result = run_method("gatys", content, [style], CPU_JOB, cache=cache, style_keys=["style"])
        complete_run(catalog, run_id, worker, metrics={"iterations": result.iterations}, artifacts=[])
        finished += 1
    done.put((finished, time.process_time() - cpu_began))
    catalog.dispose()


def cpu_round(admin_url: str, jobs: int, workers: int) -> tuple[float, float]:
    """(jobs/s by the wall clock, jobs/s by the workers' CPU time) for `workers` pinned processes."""
    url, drop = postgres_database(admin_url)
    try:
        upgrade(url)
        seed_jobs(url, jobs)
        context = multiprocessing.get_context("spawn")
        # The clock starts when every worker has loaded torch and VGG-19 and connected (a barrier
        # of the workers and this process), not after a guessed sleep that slow loads outlast.
        start, done = context.Barrier(workers + 1), context.Queue()
        cores = sorted(os.sched_getaffinity(0))
        processes = [context.Process(target=cpu_worker,
                                     args=(url, f"cpu-{i}", cores[i] if workers <= len(cores) else None, start, done))
                     for i in range(workers)]
        for process in processes:
            process.start()
        start.wait()
        began = time.perf_counter()
        results = [done.get(timeout=900) for _ in processes]
        elapsed = time.perf_counter() - began
        for process in processes:
            process.join()
        finished = sum(count for count, _ in results)
        if finished != jobs:
            raise SystemExit(f"{finished} jobs done of {jobs}")
        per_cpu_second = sum(count / cpu for count, cpu in results if count)
        return jobs / elapsed, per_cpu_second
    finally:
        drop()


def claim_worker(url: str, worker: str, start: multiprocessing.synchronize.Barrier, done: multiprocessing.Queue) -> None:
    catalog = open_catalog(url)
    start.wait()
    claimed = 0
    while claim_jobs(catalog, 1, worker, 600):
        claimed += 1
    done.put(claimed)
    catalog.dispose()


def claim_rate(admin_url: str, jobs: int, workers: int) -> float:
    """Claims per second for `workers` processes claiming one job at a time until none are left."""
    url, drop = postgres_database(admin_url)
    try:
        upgrade(url)
        seed_jobs(url, jobs)
        context = multiprocessing.get_context("spawn")
        start, done = context.Barrier(workers + 1), context.Queue()
        processes = [context.Process(target=claim_worker, args=(url, f"claimer-{i}", start, done))
                     for i in range(workers)]
        for process in processes:
            process.start()
        start.wait()
        began = time.perf_counter()
        claimed = sum(done.get(timeout=600) for _ in processes)
        elapsed = time.perf_counter() - began
        for process in processes:
            process.join()
        if claimed != jobs:
            raise SystemExit(f"{claimed} claims for {jobs} jobs: a job was claimed twice or never")
        return jobs / elapsed
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-jobs", type=int, default=16)
    parser.add_argument("--claim-jobs", type=int, default=1000)
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {load_average()} at start")

    print(f"CPU-bound jobs: gatys {CPU_JOB}, one torch thread, each worker pinned to its own core; "
          f"{args.cpu_jobs} jobs, PostgreSQL catalog")
    rates = {}
    for workers in (1, 2):
        wall, cpu = cpu_round(args.postgres, args.cpu_jobs, workers)
        rates[workers] = (wall, cpu)
        print(f"  {workers} worker{'s' if workers > 1 else ' '}: {wall:6.2f} jobs/s wall, "
              f"{cpu:6.2f} jobs/s by CPU time   ({load_average()})", flush=True)
    print(f"  2 workers / 1 worker: {rates[2][0] / rates[1][0]:.2f}x wall, {rates[2][1] / rates[1][1]:.2f}x CPU time "
          "(target >= 1.7x)")

    print(f"claims: {args.claimers} worker processes over {args.claim_jobs} no-op jobs, one job per claim, PostgreSQL")
    rate = claim_rate(args.postgres, args.claim_jobs, args.claimers)
    print(f"  claim only:                      {rate:7.0f} claims/s   ({load_average()})", flush=True)
    url, drop = postgres_database(args.postgres)
    try:
        rate = run_round(url, args.claim_jobs, args.claimers, 1)
    finally:
        drop()
    print(f"  claim + start_run + complete_run: {rate:7.0f} jobs/s     ({load_average()})", flush=True)


if __name__ == "__main__":
    main()

"""Two hosts started together share one queue: each gallery run claims what it can start, not
its whole `limit`, so both hosts run some of the jobs, and none runs twice.

The start is made simultaneous on purpose: the test holds both hosts' GPU slots while two
gallery flow runs (separate processes, ATELIER_HOST host-a and host-b, one PostgreSQL catalog)
start and wait for them, then lets both go at once. A run that claimed its whole limit at
its first claim took all 12 jobs here and left the other host none.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from flows.host_slots import slot_folder
from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(300)]

HOSTS = ("host-a", "host-b")
WAIT_S = 120


def hold_slot(stack: ExitStack, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "slot-0.lock", os.O_RDWR | os.O_CREAT, 0o644)
    stack.callback(os.close, fd)  # closing the descriptor drops the lock
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the run ended early:\n{log.read_text(errors='replace')[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.05)


def test_two_hosts_started_together_each_run_some_jobs_and_none_twice(prefect_api, atelier, postgres_url, tmp_path):
    from db.models import Job, Run

    app = atelier(postgres_url, f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=3, styles=4, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=32")
    assert len(catalog_rows(app, Job)) == 12
    slot_dir = Path(app.env["ATELIER_SLOT_DIR"])
    env = {**os.environ, **app.env, "PREFECT_API_URL": prefect_api, "PYTHONPATH": str(Path(__file__).parents[1])}

    processes = {}
    with ExitStack() as slots:
        for host in HOSTS:
            hold_slot(slots, slot_folder(slot_dir, host))
        for host in HOSTS:
            log = tmp_path / f"{host}.log"
            processes[host] = (subprocess.Popen(
                [sys.executable, "-c", "from flows.gallery import gallery; gallery(limit=50)"],
                env={**env, "ATELIER_HOST": host}, stdout=log.open("wb"), stderr=subprocess.STDOUT), log)
        for host, (process, log) in processes.items():
            wait_for_line(log, f"waiting for GPU slot on {host}", process)
    # both slots are free now, at the same moment
    for host, (process, log) in processes.items():
        assert process.wait(timeout=WAIT_S) == 0, log.read_text(errors="replace")[-3000:]

    jobs = catalog_rows(app, Job)
    runs = catalog_rows(app, Run)
    assert Counter(job.status for job in jobs) == {"succeeded": 12}
    assert Counter(run.job_id for run in runs) == {job.id: 1 for job in jobs}, "a job ran twice, or never"
    per_host = Counter(run.host for run in runs)
    assert set(per_host) == set(HOSTS), f"one host ran every job: {dict(per_host)}"

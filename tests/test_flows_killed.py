"""A gallery run killed with SIGKILL mid-job never blocks the next run on its host, and leaves
no orphan Prefect server behind: on the embedded default and with a real Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.prefect import catalog_rows

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
LONG_GATYS = ("--param", "size=32", "--param", "iterations=100000")


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from atelier.cli import app; app()", *args]


def cli_env(prefect_api_url: str | None, prefect_home: Path) -> dict[str, str]:
    """The test's ATELIER_* settings; the embedded Prefect default unless a server URL is given."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(prefect_home))
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped holds no memory and no port: it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_a_running_run(app, process: subprocess.Popen, seconds: float) -> None:
    from db.models import Run

    deadline = time.monotonic() + seconds
    while not any(run.status == "running" for run in catalog_rows(app, Run)):
        assert process.poll() is None, f"the first run exited early:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "the first run never started its job"
        time.sleep(0.3)


@pytest.mark.parametrize("server", ["embedded", "prefect-server"])
def test_a_killed_run_never_blocks_the_next_one_and_leaves_no_orphan(server, request, atelier, tmp_path):
    from db.models import Job

    prefect_api_url = request.getfixturevalue("prefect_api") if server == "prefect-server" else None
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}", host="killed-run-host")
    env = cli_env(prefect_api_url, tmp_path / "prefect-home")
    from tests.fixtures.prefect import write_gallery_inputs

    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=32)
    app.cli("catalog", "add", str(tmp_path / "inputs" / "content"), "--role", "content")
    app.cli("catalog", "add", str(tmp_path / "inputs" / "style"), "--role", "style")
    app.cli("jobs", "add", "--content", "astronaut", "--style", "strokes-0", "--method", "gatys", *LONG_GATYS)
    app.cli("jobs", "add", "--content", "astronaut", "--style", "strokes-1", "--method", "noop", "--param", "size=32")

    first = subprocess.Popen(cli_command("gallery", "run", "--method", "gatys"), cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_a_running_run(app, first, seconds=180)
        servers = children_of(first.pid)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    if server == "embedded":
        assert servers, "the embedded run started no Prefect server"
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in servers), "the killed run's Prefect server outlived it"

    # The next run on the same host gets the GPU slot at once and does the other job.
    bound = 240 if server == "embedded" else 60  # the embedded run starts its own server first (slow under load)
    started = time.monotonic()
    second = subprocess.run(cli_command("gallery", "run", "--method", "noop"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=bound)
    assert second.returncode == 0, second.stdout + second.stderr
    assert time.monotonic() - started < bound
    assert "waiting for GPU slot" not in second.stdout + second.stderr
    jobs = {job.method: job for job in catalog_rows(app, Job)}
    assert {method: job.status for method, job in jobs.items()} == {"gatys": "running", "noop": "succeeded"}
    # The killed process's job is not left to its 30-minute lease: the next run of this host
    # ended it, so the next claim that wants it (any method) takes it up.
    assert jobs["gatys"].lease_expires_at < datetime.now(UTC)

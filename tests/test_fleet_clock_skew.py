"""Leases follow the database's clock: a worker whose own clock is an hour off (a host whose
NTP drifted) neither steals a live lease nor keeps a dead one.

The skewed worker is a real separate process (tests.fixtures.skewed_clock) talking to the
real PostgreSQL catalog; only its wall clock is shifted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from db.claims import claim_jobs
from db.models import Job
from db.session import open_catalog
from tests.fixtures.databases import add_jobs
from tests.fixtures.skewed_clock import run_skewed

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

HOUR = 3600.0


@pytest.fixture
def catalog(postgres_url):
    catalog = open_catalog(postgres_url)
    yield catalog
    catalog.dispose()


def lease_of(catalog, job_id: int) -> tuple[str | None, datetime | None]:
    """Who holds the job and until when (by the database's clock)."""
    with catalog.reader() as session:
        job = session.get(Job, job_id)
        return job.claimed_by, job.lease_expires_at


def test_the_skewed_process_really_runs_an_hour_ahead():
    local = datetime.fromisoformat(run_skewed(HOUR, "now"))
    assert abs((local - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(seconds=30)


def test_a_worker_whose_clock_runs_fast_does_not_steal_a_live_lease(catalog, postgres_url):
    (job,) = add_jobs(catalog, 1)
    assert claim_jobs(catalog, 1, "host-a:1", 60) == [job]
    # By its own clock the lease ran out 59 minutes ago; by the database's it has a minute left.
    assert run_skewed(HOUR, "claim", url=postgres_url, worker="fast-host:1", lease_seconds=60) == []
    assert lease_of(catalog, job)[0] == "host-a:1"


def test_a_worker_whose_clock_runs_slow_keeps_its_live_lease(catalog, postgres_url):
    (job,) = add_jobs(catalog, 1)
    assert run_skewed(-HOUR, "claim", url=postgres_url, worker="slow-host:1", lease_seconds=60) == [job]
    holder, expires = lease_of(catalog, job)
    assert holder == "slow-host:1"
    assert timedelta(seconds=50) < expires - datetime.now(UTC) <= timedelta(seconds=61)
    assert claim_jobs(catalog, 1, "host-a:1", 60) == []  # not stolen by a worker with the right time
    renewed = datetime.fromisoformat(
        run_skewed(-HOUR, "renew", url=postgres_url, job_id=job, worker="slow-host:1", lease_seconds=120))
    assert timedelta(seconds=110) < renewed - datetime.now(UTC) <= timedelta(seconds=121)


def test_the_lease_of_a_dead_worker_whose_clock_ran_fast_expires_on_time(catalog, postgres_url):
    (job,) = add_jobs(catalog, 1)
    lease = 2
    assert run_skewed(HOUR, "claim", url=postgres_url, worker="fast-host:1", lease_seconds=lease) == [job]
    # The worker's process has exited: its lease must end `lease` s from now, not in an hour.
    time.sleep(lease + 0.5)
    assert claim_jobs(catalog, 1, "host-a:1", 60) == [job]
    assert lease_of(catalog, job)[0] == "host-a:1"

"""Claiming jobs: atomic, lease-based, and exactly once under concurrency."""

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from db.claims import claim_jobs, renew_lease, renew_waiting_leases
from db.errors import LeaseLost
from db.jobs import job_spec
from db.models import Job, Run
from db.runs import start_run
from db.session import open_catalog
from tests.fixtures.databases import add_image, add_jobs

pytestmark = pytest.mark.integration


def _expire_lease(catalog, job_id):
    with catalog.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(
            lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_claims_take_highest_priority_first_and_count_attempts(catalog):
    low = add_jobs(catalog, 2, content="c1")
    high = add_jobs(catalog, 1, content="c2", priority=9)
    assert claim_jobs(catalog, 2, "w1", 60) == sorted([high[0], low[0]])
    assert claim_jobs(catalog, 5, "w2", 60) == [low[1]]
    assert claim_jobs(catalog, 5, "w3", 60) == []
    with catalog.reader() as session:
        spec = job_spec(session, high[0])
    assert (spec.status, spec.claimed_by, spec.attempts) == ("running", "w1", 1)


def test_claim_filters(catalog):
    add_image(catalog, "tagged", "content", tags=["gallery"])
    gatys = add_jobs(catalog, 2, method="gatys", content="tagged")
    noop = add_jobs(catalog, 2, method="noop", content="plain", priority=1)
    assert claim_jobs(catalog, 10, "w", 60, methods=["noop"], job_ids=[noop[1], gatys[0]]) == [noop[1]]
    assert claim_jobs(catalog, 10, "w", 60, tags=["Gallery"]) == gatys
    assert claim_jobs(catalog, 10, "w", 60, min_priority=1) == [noop[0]]


def test_an_expired_lease_is_claimed_again_and_a_live_one_never(catalog):
    first, second = add_jobs(catalog, 2)
    assert claim_jobs(catalog, 2, "dead-worker", 600) == [first, second]
    run_id = start_run(catalog, first, "dead-worker")
    _expire_lease(catalog, first)
    assert claim_jobs(catalog, 10, "rescuer", 600) == [first]  # `second` is still leased
    with catalog.reader() as session:
        job = job_spec(session, first)
        orphan = session.get(Run, run_id)
        assert (job.claimed_by, job.attempts) == ("rescuer", 2)
        assert (orphan.status, orphan.error_type) == ("failed", "LeaseExpired")
    with pytest.raises(LeaseLost):
        renew_lease(catalog, first, "dead-worker", 600)
    assert renew_lease(catalog, first, "rescuer", 600) > datetime.now(UTC)


def test_waiting_jobs_keep_their_leases_and_a_lost_one_is_dropped(catalog):
    """Jobs a run claimed that wait for a slot are renewed together; one another worker took
    meanwhile (its lease had run out) is no longer answered as held."""
    waiting, lost = add_jobs(catalog, 2)
    assert claim_jobs(catalog, 2, "waiter", 600) == [waiting, lost]
    _expire_lease(catalog, waiting)
    _expire_lease(catalog, lost)
    assert claim_jobs(catalog, 1, "other", 600, job_ids=[lost]) == [lost]
    assert renew_waiting_leases(catalog, [waiting, lost], "waiter", 600) == [waiting]
    assert claim_jobs(catalog, 10, "thief", 600) == []  # the renewed lease is live again
    with catalog.reader() as session:
        assert job_spec(session, waiting).claimed_by == "waiter"
        assert job_spec(session, lost).claimed_by == "other"


def test_a_job_whose_last_attempt_expired_fails_instead_of_being_claimed(catalog):
    (job,) = add_jobs(catalog, 1, max_attempts=1)
    assert claim_jobs(catalog, 1, "w1", 600) == [job]
    start_run(catalog, job, "w1")
    _expire_lease(catalog, job)
    assert claim_jobs(catalog, 1, "w2", 600) == []
    with catalog.reader() as session:
        spec = job_spec(session, job)
    assert spec.status == "failed" and spec.claimed_by is None


def test_a_claim_whose_worker_died_before_starting_is_not_counted(catalog):
    (job,) = add_jobs(catalog, 1, max_attempts=1)
    assert claim_jobs(catalog, 1, "killed-before-starting", 600) == [job]
    _expire_lease(catalog, job)
    assert claim_jobs(catalog, 1, "w2", 600) == [job]  # its only attempt never started
    with catalog.reader() as session:
        spec = job_spec(session, job)
    assert (spec.claimed_by, spec.attempts) == ("w2", 1)


def _claim_until_empty(url: str, worker: str, queue, start) -> None:
    catalog = open_catalog(url)
    claimed: list[int] = []
    # Process start-up takes longer than claiming 400 jobs: without the barrier the first
    # process to get going could empty the queue alone and the test would prove nothing.
    start.wait(timeout=60)
    while batch := claim_jobs(catalog, 7, worker, 600):
        claimed.extend(batch)
    catalog.dispose()
    queue.put(claimed)


@pytest.mark.postgres
def test_four_processes_claim_each_of_400_jobs_exactly_once(postgres_url):
    url = postgres_url
    catalog = open_catalog(url)
    jobs = add_jobs(catalog, 400)
    catalog.dispose()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = context.Barrier(4)
    workers = [context.Process(target=_claim_until_empty, args=(url, f"w{i}", queue, start)) for i in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    claimed = [job for result in results for job in result]
    assert sorted(claimed) == jobs  # every job, none twice
    assert sum(1 for result in results if result) >= 2  # the claimers really overlapped


def test_expired_leases_of_dead_workers_are_claimed_at_once(catalog):
    from db.claims import expire_leases, holders_on_host

    started, unstarted, elsewhere = add_jobs(catalog, 3, max_attempts=1)
    claim_jobs(catalog, 2, "gpu_1:4242", 1800, job_ids=[started, unstarted])
    claim_jobs(catalog, 1, "gpu-1:77", 1800, job_ids=[elsewhere])  # `_` in a host is no wildcard
    start_run(catalog, started, "gpu_1:4242")
    assert holders_on_host(catalog, "gpu_1") == ["gpu_1:4242"]
    assert expire_leases(catalog, ["gpu_1:4242"]) == [started, unstarted]
    # Its started attempt was its last: it fails (LeaseExpired); the unstarted one is claimed, uncounted.
    assert claim_jobs(catalog, 5, "gpu_1:5000", 1800) == [unstarted]
    with catalog.reader() as session:
        assert (job_spec(session, started).status, job_spec(session, unstarted).attempts) == ("failed", 1)
        assert job_spec(session, elsewhere).claimed_by == "gpu-1:77"

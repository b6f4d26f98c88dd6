"""A film's segments in the catalog: planned as child jobs any worker claims, the film waiting
and never claimed, and its assembly taken exactly once, only after every segment succeeded."""

from __future__ import annotations

import threading

import pytest

from db.claims import claim_jobs
from db.errors import LeaseLost
from db.jobs import job_spec
from db.runs import complete_run, start_run
from db.segments import (
    SEGMENT_KEY,
    film_params,
    plan_film,
    release_successor,
    segment_states,
    take_assembly,
    wait_for_segments,
)
from tests.fixtures.databases import add_jobs

pytestmark = pytest.mark.integration

SEGMENTS = [{"index": i, "start": 4 * i, "end": 4 * i + 4, "context_start": 4 * i, "fresh": True} for i in range(3)]


def succeed(catalog, job_id: int, worker: str) -> None:
    run_id = start_run(catalog, job_id, worker, host=worker)
    complete_run(catalog, run_id, worker, artifacts=[], timings={}, metrics={})


def planned_film(catalog) -> tuple[int, list[int]]:
    (film,) = add_jobs(catalog, 1)
    assert claim_jobs(catalog, 1, "planner", 60) == [film]
    return film, plan_film(catalog, film, "planner", SEGMENTS, [4, 8])


def test_a_planned_film_waits_unclaimed_and_its_segments_are_jobs_any_worker_claims(catalog):
    film, segments = planned_film(catalog)
    with catalog.reader() as session:
        spec = job_spec(session, film)
        children = [job_spec(session, job_id) for job_id in segments]
    assert (spec.status, spec.claimed_by, spec.attempts) == ("waiting", None, 0)  # planning is no attempt
    assert [film_params(child.params)[1]["index"] for child in children] == [0, 1, 2]
    assert all(child.parent_job_id == film and child.params["size"] == spec.params["size"] for child in children)
    assert all(film_params(child.params)[2] == [4, 8] for child in children)
    # two workers share them; the film itself is never claimed; a film's id also names its segments
    assert claim_jobs(catalog, 2, "w1", 60, job_ids=[film]) == segments[:2]
    assert claim_jobs(catalog, 5, "w2", 60) == segments[2:]
    assert claim_jobs(catalog, 5, "w3", 60) == []


def test_planning_needs_the_film_held(catalog):
    (film,) = add_jobs(catalog, 1)
    with pytest.raises(LeaseLost):
        plan_film(catalog, film, "nobody", SEGMENTS, [])
    with catalog.reader() as session:
        assert job_spec(session, film).status == "pending"


def test_the_assembly_is_taken_once_and_only_after_the_last_segment(catalog):
    film, segments = planned_film(catalog)
    assert claim_jobs(catalog, 3, "w", 60) == segments
    succeed(catalog, segments[0], "w")
    succeed(catalog, segments[1], "w")
    assert not take_assembly(catalog, film, "w", 60)  # segment 2 still runs
    succeed(catalog, segments[2], "w")
    winners: list[str] = []
    barrier = threading.Barrier(4)

    def ask(worker: str) -> None:
        barrier.wait()
        if take_assembly(catalog, film, worker, 60):
            winners.append(worker)

    threads = [threading.Thread(target=ask, args=(f"a{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    with catalog.reader() as session:
        spec = job_spec(session, film)
    assert (spec.status, spec.claimed_by, spec.attempts) == ("running", winners[0], 1)
    assert not take_assembly(catalog, film, "late", 60)
    states = segment_states(catalog, film)
    assert [(s.index, s.start, s.end, s.status, s.host) for s in states] == [
        (i, 4 * i, 4 * i + 4, "succeeded", "w") for i in range(3)]


def test_a_film_taken_up_before_its_segments_are_done_goes_back_to_waiting(catalog):
    film, segments = planned_film(catalog)
    with catalog.session() as session:  # as after a rerun that re-opened the film
        from db.models import Job

        session.get(Job, film).status = "pending"
    assert claim_jobs(catalog, 1, "w", 60, job_ids=[film], methods=["noop"])[0] == film
    wait_for_segments(catalog, film, "w")
    with catalog.reader() as session:
        spec = job_spec(session, film)
    assert (spec.status, spec.claimed_by, spec.attempts) == ("waiting", None, 0)
    assert SEGMENT_KEY not in spec.params


def test_a_segment_that_continues_the_one_before_waits_for_it(catalog):
    (film,) = add_jobs(catalog, 1)
    assert claim_jobs(catalog, 1, "planner", 60) == [film]
    first, second, third = plan_film(catalog, film, "planner", SEGMENTS, [], handed_over=[False, True, True])
    assert claim_jobs(catalog, 5, "w", 60) == [first]  # the others wait for their predecessor's outputs
    assert release_successor(catalog, film, 0) == [second]
    assert release_successor(catalog, film, 0) == []  # once
    assert claim_jobs(catalog, 5, "w", 60) == [second]
    assert [s.status for s in segment_states(catalog, film)] == ["running", "running", "waiting"]


def test_a_film_is_cancelled_with_its_segments_and_comes_back_with_them(catalog):
    """`jobs cancel FILM` left a planned (waiting) film as it was and its segments to the fleet.
    Now the segments that are not running go with it; undone, those that continue a chain whose
    segment before them has not succeeded wait for it again, as when planned."""
    from db.runs import cancel_jobs

    (film,) = add_jobs(catalog, 1)
    assert claim_jobs(catalog, 1, "planner", 60) == [film]
    chain = [SEGMENTS[0], *({**segment, "fresh": False} for segment in SEGMENTS[1:])]
    first, second, third = plan_film(catalog, film, "planner", chain, [], handed_over=[False, True, True])
    assert claim_jobs(catalog, 5, "w", 60) == [first]

    assert cancel_jobs(catalog, [film]) == {film: "cancelled"}
    assert [s.status for s in segment_states(catalog, film)] == ["running", "cancelled", "cancelled"]  # running: left to finish
    succeed(catalog, first, "w")
    assert claim_jobs(catalog, 5, "w", 60) == []
    assert not take_assembly(catalog, film, "w", 60)

    assert cancel_jobs(catalog, [film], undo=True) == {film: "pending"}
    assert [s.status for s in segment_states(catalog, film)] == ["succeeded", "pending", "waiting"]
    assert sorted(claim_jobs(catalog, 5, "w", 60)) == [film, second]

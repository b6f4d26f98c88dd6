"""Recording runs: success and failure in one transaction each, guarded by the lease;
reruns of failed jobs; the run, artwork and statistics queries."""

import pytest

from db.claims import claim_jobs
from db.errors import LeaseLost, NotFound
from db.jobs import job_spec
from db.queries import (
    Filters,
    best_artworks,
    list_artworks,
    list_jobs,
    list_runs,
    runtime_stats,
    show_artwork,
    show_job,
)
from db.runs import ArtifactRecord, cancel_jobs, complete_run, fail_run, release_jobs, reset_failed, start_run
from tests.fixtures.databases import add_jobs

pytestmark = pytest.mark.integration


def _output(tag: str) -> list[ArtifactRecord]:
    return [
        ArtifactRecord("output", f"file:///out/{tag}.png", "a" * 64, 1000, "image/png", 64, 48),
        ArtifactRecord("thumbnail", f"file:///out/{tag}-thumb.png", "b" * 64, 100, "image/png", 32, 24),
    ]


def _succeed(catalog, job_id, worker="w", ssim=0.5):
    run_id = start_run(catalog, job_id, worker, seed=7, versions={"torch": "2"}, device="cpu", host="h",
                       flow_run_id="flow-1", task_run_id="task-1")
    complete_run(catalog, run_id, worker, artifacts=_output(str(job_id)), timings={"compute": 1.5},
                 metrics={"ssim_to_content": ssim}, peak_memory_bytes=10, cache_hit=False)
    return run_id


def test_a_completed_run_records_everything_in_one_go(catalog):
    (job,) = add_jobs(catalog, 1)
    claim_jobs(catalog, 1, "w", 60)
    run_id = _succeed(catalog, job)
    with catalog.reader() as session:
        history = show_job(session, job)
        artwork = list_artworks(session)[0]
        assert show_artwork(session, artwork["id"]) == artwork
    assert history["status"] == "succeeded" and history["claimed_by"] is None
    (run,) = history["runs"]
    assert (run["id"], run["attempt"], run["status"], run["seed"]) == (run_id, 1, "succeeded", 7)
    assert run["params"] == {"size": 32} and run["flow_run_id"] == "flow-1" and run["duration_s"] >= 0
    assert [a["kind"] for a in run["artifacts"]] == ["output", "thumbnail"]
    assert artwork["job_id"] == job and artwork["run_id"] == run_id and artwork["method"] == "noop"
    assert artwork["related_uris"] == {"thumbnail": f"file:///out/{job}-thumb.png"}
    assert artwork["styles"][0]["title"] == "Style"


def test_a_worker_that_lost_its_lease_records_nothing(catalog):
    (job,) = add_jobs(catalog, 1)
    claim_jobs(catalog, 1, "w1", 60)
    with pytest.raises(LeaseLost):
        start_run(catalog, job, "w2")
    run_id = start_run(catalog, job, "w1")
    with pytest.raises(LeaseLost):
        complete_run(catalog, run_id, "w2", artifacts=_output("x"))
    with catalog.reader() as session:
        assert list_artworks(session) == [] and job_spec(session, job).status == "running"


def test_transient_failures_retry_until_attempts_run_out(catalog):
    (job,) = add_jobs(catalog, 1, max_attempts=2)
    statuses = []
    for _ in range(2):
        assert claim_jobs(catalog, 1, "w", 60) == [job]
        run_id = start_run(catalog, job, "w")
        statuses.append(fail_run(catalog, run_id, "w", error_type="StorageUnavailable", message="endpoint down",
                                 traceback="Traceback ...", transient=True))
    assert statuses == ["pending", "failed"]
    assert claim_jobs(catalog, 1, "w", 60) == []  # failed stays failed until reset
    with catalog.reader() as session:
        history = show_job(session, job)
    assert history["last_error_type"] == "StorageUnavailable"
    assert [(r["attempt"], r["status"], r["error_message"]) for r in history["runs"]] == [
        (1, "failed", "endpoint down"), (2, "failed", "endpoint down")]


def test_permanent_failures_fail_at_once_and_reset_selects_what_to_rerun(catalog):
    bad_image, bad_params, done = add_jobs(catalog, 3)
    claim_jobs(catalog, 3, "w", 60)
    for job, message in ((bad_image, "corrupt image"), (bad_params, "unknown parameter 'sise'")):
        assert fail_run(catalog, start_run(catalog, job, "w"), "w", error_type="InvalidInputError",
                        message=message) == "failed"
    _succeed(catalog, done)
    assert reset_failed(catalog, error_contains="CORRUPT") == [bad_image]
    assert reset_failed(catalog, job_ids=[done, bad_image]) == []  # succeeded and pending are untouched
    assert reset_failed(catalog, method="gatys") == []
    assert reset_failed(catalog) == [bad_params]
    assert claim_jobs(catalog, 5, "w", 60) == [bad_image, bad_params]
    with catalog.reader() as session:
        assert job_spec(session, bad_image).attempts == 2  # the failed run, and this claim
        assert [r["attempt"] for r in show_job(session, bad_image)["runs"]] == [1]


def test_attempts_count_every_run_across_reruns_and_each_rerun_gets_a_fresh_budget(catalog):
    (job,) = add_jobs(catalog, 1, max_attempts=1)
    for _ in range(3):
        assert claim_jobs(catalog, 1, "w", 60) == [job]
        fail_run(catalog, start_run(catalog, job, "w"), "w", error_type="InvalidInputError", message="bad")
        assert claim_jobs(catalog, 1, "w", 60) == []  # its one attempt is used up
        assert reset_failed(catalog, job_ids=[job]) == [job]
    with catalog.reader() as session:
        history = show_job(session, job)
        (row,) = list_jobs(session)
    assert [r["attempt"] for r in history["runs"]] == [1, 2, 3]
    assert history["attempts"] == row["attempts"] == 3
    assert claim_jobs(catalog, 1, "w", 60) == [job]  # the third rerun's budget is fresh


def test_released_jobs_are_pending_again_without_losing_an_attempt(catalog):
    started, unstarted, other_workers, live = add_jobs(catalog, 4, max_attempts=1)
    claim_jobs(catalog, 2, "w", 60, job_ids=[started, unstarted])
    claim_jobs(catalog, 1, "w2", 60, job_ids=[other_workers])
    run_id = start_run(catalog, started, "w")
    assert release_jobs(catalog, "Ctrl-C", worker="w") == [started, unstarted]
    with catalog.reader() as session:
        jobs = {job_id: job_spec(session, job_id) for job_id in (started, unstarted, other_workers)}
        history = show_job(session, started)
    assert {job_id: (j.status, j.claimed_by, j.attempts) for job_id, j in jobs.items()} == {
        started: ("pending", None, 1), unstarted: ("pending", None, 0), other_workers: ("running", "w2", 1)}
    (run,) = history["runs"]
    assert (run["id"], run["status"], run["error_type"], run["error_message"]) == (run_id, "failed", "Interrupted", "Ctrl-C")
    assert run["finished_at"] is not None
    with pytest.raises(LeaseLost):  # the interrupted worker can no longer record its run
        complete_run(catalog, run_id, "w", artifacts=_output("late"))
    # Their single attempt is still there: both are claimed again, and can succeed.
    assert claim_jobs(catalog, 5, "w3", 60, job_ids=[started, unstarted]) == [started, unstarted]
    _succeed(catalog, started, worker="w3")
    # By hand: a live lease is released only when asked to ignore it.
    claim_jobs(catalog, 1, "w4", 600, job_ids=[live])
    assert release_jobs(catalog, "stuck", job_ids=[live], expired_only=True) == []
    assert release_jobs(catalog, "stuck", job_ids=[live]) == [live]


def test_cancelled_jobs_are_never_claimed_until_uncancelled(catalog):
    pending, failed, running, done = add_jobs(catalog, 4)
    claim_jobs(catalog, 3, "w", 60, job_ids=[failed, running, done])
    fail_run(catalog, start_run(catalog, failed, "w"), "w", error_type="InvalidInputError", message="corrupt")
    _succeed(catalog, done)
    with pytest.raises(NotFound, match="no job with id 999"):
        cancel_jobs(catalog, [pending, 999])
    with catalog.reader() as session:
        assert job_spec(session, pending).status == "pending"  # the unknown id changed nothing
    assert cancel_jobs(catalog, [pending, failed, running, done]) == {
        pending: "cancelled", failed: "cancelled", running: "running", done: "succeeded"}
    assert claim_jobs(catalog, 5, "w2", 60) == []
    assert reset_failed(catalog) == []  # a cancelled job is not a failed one
    assert cancel_jobs(catalog, [failed], undo=True) == {failed: "pending"}
    assert claim_jobs(catalog, 5, "w2", 60) == [failed]


def test_run_and_artwork_queries(catalog):
    jobs = add_jobs(catalog, 3)
    claim_jobs(catalog, 3, "w", 60)
    for job, ssim in zip(jobs[:2], (0.2, 0.9)):
        _succeed(catalog, job, ssim=ssim)
    fail_run(catalog, start_run(catalog, jobs[2], "w"), "w", error_type="Boom", message="boom")
    with catalog.reader() as session:
        assert [r["status"] for r in list_runs(session)] == ["failed", "succeeded", "succeeded"]  # newest first
        assert [r["job_id"] for r in list_runs(session, Filters(status="failed"))] == [jobs[2]]
        assert [a["job_id"] for a in best_artworks(session, "ssim_to_content")] == [jobs[1], jobs[0]]
        assert [a["job_id"] for a in best_artworks(session, "ssim_to_content", lowest=True, f=Filters(limit=1))] == [
            jobs[0]]
        assert best_artworks(session, "no_such_metric") == []
        assert [a["job_id"] for a in list_artworks(session, Filters(style="style", sort="id"))] == jobs[:2]
        stats = runtime_stats(session)
    assert {(s["method"], s["size"], s["runs"]) for s in stats} == {("noop", 32, 1), ("noop", 33, 1)}


def test_runtime_stats_group_by_the_parameters_that_change_the_cost(catalog):
    """Issue 14 item 11: same method and size, but other iterations or optimizer, are other rows."""
    from db.jobs import add_job
    from tests.fixtures.databases import add_image

    content, style = add_image(catalog, "c"), add_image(catalog, "s", "style")
    variants = [{"size": 64, "iterations": 10, "optimizer": "lbfgs"}, {"size": 64, "iterations": 300, "optimizer": "lbfgs"},
                {"size": 64, "iterations": 300, "optimizer": "adam"}, {"size": 64, "iterations": 300, "optimizer": "adam",
                                                                      "seed": 5}]
    with catalog.session() as session:
        jobs = [add_job(session, content_id=content, style_ids=[style], method="gatys", params=p)[0] for p in variants]
        session.flush()
        ids = [job.id for job in jobs]
    claim_jobs(catalog, 4, "w", 60)
    for job_id, params in zip(ids, variants):
        complete_run(catalog, start_run(catalog, job_id, "w", params=params, device="cpu"), "w", artifacts=[])
    with catalog.reader() as session:
        stats = runtime_stats(session)
    assert sorted((s["iterations"], s["optimizer"], s["runs"]) for s in stats) == [
        (10, "lbfgs", 1), (300, "adam", 2), (300, "lbfgs", 1)]  # the seed does not change the cost
    assert {s["device"] for s in stats} == {"cpu"} and {s["size"] for s in stats} == {64}

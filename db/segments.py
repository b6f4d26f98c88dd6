"""A film's segments as catalog work: child jobs that any host claims, and the film's one assembly.

A video job long enough to share is planned once, by the worker that claimed it: its segments
become jobs of their own (same method, content and styles; the parameters carry the segment),
so claims, leases, Run records, retries, rerun-failed and the dashboard treat them as any job.
The film itself is then `waiting`: never claimed, it holds nothing while its segments run.

When a segment succeeds, its worker asks for the assembly: one guarded UPDATE turns the film
from `waiting` to `running` (held by that worker) only if every segment has succeeded, so of
two segments finishing together exactly one worker assembles, and a film is never assembled
twice. An assembly that dies leaves the film running with a lease, which expires and is taken
up by the next claim like any abandoned job (and redone from the stored segments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from db.claims import runs_of_job
from db.errors import LeaseLost
from db.jobs import idempotency_key
from db.models import Artifact, ArtifactKind, Job, JobStatus, JobStyle, Run
from db.session import Catalog, database_now

SEGMENT_KEY = "segment"  # a segment job's parameters carry its segment under this key
SHOT_STARTS_KEY = "shot_starts"  # and the film's cuts, so the segment's Run says how each frame was made


def segment_params(params: Mapping[str, Any], segment: Mapping[str, Any], shot_starts: Sequence[int]) -> dict[str, Any]:
    """The parameters of one segment job: the film's, plus which frames and where the shots start."""
    return {**params, SEGMENT_KEY: dict(segment), SHOT_STARTS_KEY: [int(cut) for cut in shot_starts]}


def film_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, list[int]]:
    """A job's method parameters apart from its segment: (method params, segment or None, shot starts)."""
    method_params = {k: v for k, v in params.items() if k not in (SEGMENT_KEY, SHOT_STARTS_KEY)}
    return method_params, params.get(SEGMENT_KEY), list(params.get(SHOT_STARTS_KEY, []))


def plan_film(
    catalog: Catalog, film_id: int, worker: str, segments: Sequence[Mapping[str, Any]], shot_starts: Sequence[int],
    *, handed_over: Sequence[bool] = (),
) -> list[int]:
    """Record the plan of held film `film_id`: its segments as jobs, the film waiting.

    A segment whose `handed_over` flag is set continues its predecessor's chain (Ruder's
    hand-over inside a shot): it waits, unclaimable, until the segment before it succeeds
    (:func:`release_successor`); the others are pending at once, for any host.

    One transaction: a worker that dies while planning leaves the film as it was (running
    under its lease), never half planned. The claim that took the film to plan it started
    no Run, so its attempt is given back. Raises LeaseLost if `worker` no longer holds it.
    """
    waits = list(handed_over) or [False] * len(segments)
    with catalog.session() as session:
        film = session.scalar(select(Job).where(Job.id == film_id).with_for_update())
        if film is None or film.status != JobStatus.RUNNING or film.claimed_by != worker:
            raise LeaseLost(f"job {film_id} is no longer claimed by {worker}")
        styles = [(style.image_id, style.weight) for style in film.styles]
        content_sha = film.content.sha256
        style_shas = [(style.image.sha256, style.weight) for style in film.styles]
        children = []
        for segment, waiting in zip(segments, waits, strict=True):
            params = segment_params(film.params, segment, shot_starts)
            children.append(Job(
                status=JobStatus.WAITING if waiting else JobStatus.PENDING,
                content_id=film.content_id, method=film.method, params=params, priority=film.priority,
                max_attempts=film.max_attempts, parent_job_id=film.id,
                idempotency_key=idempotency_key(film.method, content_sha, style_shas, params),
                styles=[JobStyle(position=i, image_id=image_id, weight=weight)
                        for i, (image_id, weight) in enumerate(styles)],
            ))
        session.add_all(children)
        film.status = JobStatus.WAITING
        film.claimed_by = None
        film.lease_expires_at = None
        film.attempts = film.attempts - 1
        session.flush()
        return [child.id for child in children]


def segments_of_films(connection: Connection, job_ids: Sequence[int]) -> list[int]:
    """The segment jobs of those of `job_ids` that are planned films (a film is cancelled with them)."""
    return list(connection.scalars(select(Job.id).where(Job.parent_job_id.in_(list(job_ids)))))


def wait_again_for_predecessors(connection: Connection, segment_ids: Sequence[int]) -> None:
    """Pending segments among `segment_ids` that continue the chain of a segment not yet
    succeeded wait for it again, as when planned (a cancelled film made pending again).

    Every segment that does not start a shot waits, fast video's too: it is released when the
    one before it succeeds (:func:`release_successor`), as each success releases its successor;
    only the parallelism of independent fast-video chunks is given up, never a hand-over."""
    films = list(connection.scalars(select(Job.parent_job_id).where(Job.id.in_(list(segment_ids))).distinct()))
    rows = connection.execute(select(Job.id, Job.parent_job_id, Job.params, Job.status)
                              .where(Job.parent_job_id.in_(films))).all()
    status = {(film, params[SEGMENT_KEY]["index"]): job_status for _, film, params, job_status in rows}
    waiting = [job_id for job_id, film, params, job_status in rows
               if job_id in set(segment_ids) and job_status == JobStatus.PENDING and not params[SEGMENT_KEY]["fresh"]
               and status.get((film, params[SEGMENT_KEY]["index"] - 1)) != JobStatus.SUCCEEDED]
    if waiting:
        connection.execute(update(Job).where(Job.id.in_(waiting)).values(status=JobStatus.WAITING))


def segment_ids(catalog: Catalog, film_id: int) -> list[int]:
    """The film's segment jobs, in segment order (empty: the film was never planned)."""
    with catalog.reader() as session:
        jobs = session.scalars(select(Job).where(Job.parent_job_id == film_id)).all()
        return [job.id for job in sorted(jobs, key=lambda job: job.params[SEGMENT_KEY]["index"])]


def take_assembly(catalog: Catalog, film_id: int, worker: str, lease_seconds: float) -> bool:
    """Hold waiting film `film_id` for its assembly if every segment has succeeded; whether taken.

    The guard is the film's own row: only a `waiting` film is taken, and the taker turns it
    `running`, so exactly one of several concurrent askers wins.
    """
    child = aliased(Job)
    unfinished = exists().where(child.parent_job_id == Job.id, child.status != JobStatus.SUCCEEDED)
    with catalog.transaction() as connection:
        now = database_now(connection)
        taken = connection.execute(
            update(Job)
            .where(Job.id == film_id, Job.status == JobStatus.WAITING, ~unfinished)
            .values(status=JobStatus.RUNNING, claimed_by=worker, attempts=runs_of_job() + 1,
                    lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        ).rowcount
    return bool(taken)


def release_successor(catalog: Catalog, film_id: int, index: int) -> list[int]:
    """Make the segment after segment `index` of film `film_id` claimable if it waits for it
    (the hand-over: its predecessor's outputs now exist); the ids released."""
    states = segment_states(catalog, film_id)
    successors = [state.job_id for state in states if state.index == index + 1 and state.status == JobStatus.WAITING]
    if not successors:
        return []
    with catalog.transaction() as connection:
        return list(connection.scalars(
            update(Job).where(Job.id.in_(successors), Job.status == JobStatus.WAITING)
            .values(status=JobStatus.PENDING).returning(Job.id)))


def wait_for_segments(catalog: Catalog, film_id: int, worker: str) -> None:
    """Give held film `film_id` back to waiting (a segment is not done yet); its claim is not charged."""
    with catalog.transaction() as connection:
        connection.execute(
            update(Job)
            .where(Job.id == film_id, Job.status == JobStatus.RUNNING, Job.claimed_by == worker)
            .values(status=JobStatus.WAITING, claimed_by=None, lease_expires_at=None, attempts=Job.attempts - 1)
        )


@dataclass(frozen=True)
class SegmentState:
    """What a person wants to see of one segment: which frames, how far, on which host."""

    job_id: int
    index: int
    start: int
    end: int
    status: str
    host: str | None  # of its latest run
    frames_done: int  # checkpointed frames

    @property
    def frames(self) -> int:
        return self.end - self.start


def segment_states(catalog: Catalog, film_id: int) -> list[SegmentState]:
    """The film's segments in order, each with its state, latest host and frames done."""
    with catalog.reader() as session:
        return read_segment_states(session, film_id)


def read_segment_states(session: Session, film_id: int) -> list[SegmentState]:
    """:func:`segment_states` inside an open session (the catalog queries' `jobs show`)."""
    return films_segments(session, [film_id]).get(film_id, [])


def films_segments(session: Session, film_ids: Sequence[int]) -> dict[int, list[SegmentState]]:
    """The segments of each of `film_ids` that was planned, in order (one query for a page of jobs)."""
    if not film_ids:
        return {}
    latest = (select(Run.host).where(Run.job_id == Job.id).order_by(Run.attempt.desc()).limit(1)
              .correlate(Job).scalar_subquery())
    done = (select(func.count(func.distinct(Artifact.frames)))
            .where(Artifact.job_id == Job.id, Artifact.kind == ArtifactKind.CHECKPOINT.value)
            .correlate(Job).scalar_subquery())
    rows = session.execute(select(Job.parent_job_id, Job.id, Job.params, Job.status, latest, done)
                           .where(Job.parent_job_id.in_(list(film_ids)))).all()
    films: dict[int, list[SegmentState]] = {}
    for film_id, job_id, params, status, host, frames_done in rows:
        segment = params[SEGMENT_KEY]
        films.setdefault(film_id, []).append(SegmentState(job_id, segment["index"], segment["start"], segment["end"],
                                                          status, host, int(frames_done or 0)))
    return {film_id: sorted(states, key=lambda state: state.index) for film_id, states in films.items()}


def film_progress(states: Sequence[SegmentState]) -> tuple[int, int]:
    """(frames done, frames in all) of a film's segments, across every host."""
    return sum(min(state.frames_done, state.frames) for state in states), sum(state.frames for state in states)


def films_of(catalog: Catalog, job_ids: Sequence[int]) -> dict[int, int]:
    """The film of each of `job_ids` that is a segment: {segment job id: film job id}."""
    if not job_ids:
        return {}
    with catalog.reader() as session:
        rows = session.execute(
            select(Job.id, Job.parent_job_id).where(and_(Job.id.in_(list(job_ids)), Job.parent_job_id.is_not(None)))
        ).all()
    return {job_id: parent for job_id, parent in rows}


def succeeded_run(catalog: Catalog, job_id: int) -> tuple[int | None, dict[str, Any]]:
    """The id and metrics of job `job_id`'s succeeded run (None, {} if it has none)."""
    with catalog.reader() as session:
        row = session.execute(
            select(Run.id, Run.metrics).where(Run.job_id == job_id, Run.status == "succeeded").order_by(Run.id.desc())
        ).first()
    return (row[0], dict(row[1] or {})) if row else (None, {})

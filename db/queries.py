"""The questions users ask of the catalog, as functions returning plain dicts.

Plain dicts (JSON-ready apart from datetimes) serve the CLI's tables, its `--json` output
and, later, a web page, without leaking sessions or lazy loads into callers.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from db.errors import InvalidRequest, NotFound
from db.images import MAX_ID, find_image, normalize_tags
from db.models import Artifact, ArtifactKind, Image, ImageTag, Job, JobStatus, JobStyle, Run, RunStatus
from db.segments import film_progress, films_segments, read_segment_states
from db.text import check_filter_text, check_filter_values, contains_text


@dataclass(frozen=True)
class Filters:
    """Common filters; each query applies those that make sense for it.

    Several tags must all match: on an image itself, or for jobs, runs and artworks, each
    on some input image (content or style).
    `style` and `content` are image references (id, sha256 prefix, title or file name);
    `artist` matches any input image of a job; `title` is a case-insensitive substring;
    `sort` is a key of the query's SORTS, with a leading `-` for descending order.
    """

    role: str | None = None
    tags: Sequence[str] = ()
    artist: str | None = None
    style: str | None = None
    content: str | None = None
    method: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    title: str | None = None
    sort: str | None = None
    limit: int | None = 50
    offset: int = 0  # rows to skip before `limit` (a page of a listing)

    def __post_init__(self) -> None:
        # Here, so that the CLI's options and the web app's query strings are checked alike.
        for name in ("artist", "style", "content", "method", "status", "title", "role", "sort"):
            check_filter_text(name, getattr(self, name))
        check_filter_values("tag", self.tags)


# A number beyond the largest id a catalog can hold matches nothing, and must say so
# instead of overflowing the driver.


def check_ids(ids: Sequence[int], what: str) -> None:
    """Raise NotFound for ids that no row can have (below 1 or beyond the integer range)."""
    impossible = [i for i in ids if not 1 <= i <= MAX_ID]
    if impossible:
        raise NotFound(f"no {what} with id {', '.join(map(str, impossible))}")


def check_status(status: str | None, allowed: type[StrEnum]) -> None:
    """Refuse a status filter that no row can have (a typo would otherwise list nothing)."""
    if status is not None and status not in allowed.__members__.values():
        raise InvalidRequest(f"unknown status {status!r}: expected one of {', '.join(allowed)}")


# Every listing is newest first, so that `--limit` keeps the latest rows.
NEWEST_FIRST = "-id"


def _sorted(query: Select[Any], sorts: dict[str, Any], key: str | None, default: str) -> Select[Any]:
    key = key or default
    name = key.lstrip("-")
    column = sorts.get(name)
    if column is None:
        raise InvalidRequest(f"cannot sort by {name!r}: choose one of {', '.join(sorts)}")
    descending = key.startswith("-")
    order = [column.desc() if descending else column.asc()]
    if name != "id":
        order.append(sorts["id"].desc() if descending else sorts["id"].asc())  # ties in a stable order
    return query.order_by(*order)


def _limited(query: Select[Any], limit: int | None, offset: int = 0) -> Select[Any]:
    if limit is not None and limit < 1:
        raise InvalidRequest(f"limit must be at least 1, got {limit}")
    if offset < 0:
        raise InvalidRequest(f"offset must not be negative, got {offset}")
    query = query.offset(offset) if offset else query
    return query if limit is None else query.limit(limit)


def _dated(query: Select[Any], column: Any, f: Filters) -> Select[Any]:
    if f.since is not None:
        query = query.where(column >= f.since)
    if f.until is not None:
        query = query.where(column < f.until)
    return query


def _tagged(image_id: Any, tag: str) -> ColumnElement[bool]:
    return exists().where(ImageTag.image_id == image_id, ImageTag.tag == tag)


def _any_input(condition_for: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    """True when the job's content image or any of its style images satisfies a condition."""
    return or_(
        condition_for(Job.content_id),
        exists().where(JobStyle.job_id == Job.id, condition_for(JobStyle.image_id)),
    )


def _job_filters(session: Session, query: Select[Any], f: Filters) -> Select[Any]:
    """Filters on a query that has Job in its FROM: inputs, method."""
    if f.method:
        query = query.where(Job.method == f.method)
    if f.content:
        query = query.where(Job.content_id == find_image(session, f.content, role="content").id)
    if f.style:
        style_id = find_image(session, f.style, role="style").id
        # IN rather than a correlated EXISTS: both databases can then start from the style's
        # few jobs (job_styles.image_id index) instead of testing every row of the listing.
        query = query.where(Job.id.in_(select(JobStyle.job_id).where(JobStyle.image_id == style_id)))
    if f.artist:
        artist = f.artist
        query = query.where(
            _any_input(lambda image_id: exists().where(Image.id == image_id, contains_text(Image.artist, artist)))
        )
    if f.title:
        title = f.title
        query = query.where(
            _any_input(lambda image_id: exists().where(Image.id == image_id, contains_text(Image.title, title)))
        )
    for tag in normalize_tags(f.tags):
        query = query.where(_any_input(lambda image_id, tag=tag: _tagged(image_id, tag)))
    return query


# ---- serializers -------------------------------------------------------------------------


def image_dict(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "sha256": image.sha256,
        "role": image.role,
        "title": image.title,
        "artist": image.artist,
        "year": image.year,
        "license": image.license,
        "tags": image.tag_names,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "bytes": image.bytes,
        "uri": image.uri,
        "source_name": image.source_name,
        "created_at": image.created_at,
    }


def artifact_dict(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "kind": artifact.kind,
        "uri": artifact.uri,
        "sha256": artifact.sha256,
        "bytes": artifact.bytes,
        "content_type": artifact.content_type,
        "width": artifact.width,
        "height": artifact.height,
        "frames": artifact.frames,
        "fps": artifact.fps,
        "run_id": artifact.run_id,
        "job_id": artifact.job_id,
        "created_at": artifact.created_at,
    }


def run_dict(run: Run, *, artifacts: bool = False) -> dict[str, Any]:
    data = {
        "id": run.id,
        "job_id": run.job_id,
        "attempt": run.attempt,
        "status": run.status,
        "worker": run.worker,
        "params": run.params,
        "seed": run.seed,
        "versions": run.versions,
        "device": run.device,
        "host": run.host,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_s": run.duration_s,
        "timings": run.timings,
        "metrics": run.metrics,
        "peak_memory_bytes": run.peak_memory_bytes,
        "cache_hit": run.cache_hit,
        "flow_run_id": run.flow_run_id,
        "task_run_id": run.task_run_id,
        "error_type": run.error_type,
        "error_message": run.error_message,
        "error_traceback": run.error_traceback,
    }
    if artifacts:
        data["artifacts"] = [artifact_dict(a) for a in run.artifacts]
    return data


def _input_brief(image: Image) -> dict[str, Any]:
    return {"id": image.id, "sha256": image.sha256, "title": image.title, "artist": image.artist}


def job_dict(job: Job, *, runs: bool = False) -> dict[str, Any]:
    data = {
        "id": job.id,
        "status": job.status,
        "method": job.method,
        "params": job.params,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "uncounted_attempts": job.uncounted_attempts,
        "claimed_by": job.claimed_by,
        "lease_expires_at": job.lease_expires_at,
        "idempotency_key": job.idempotency_key,
        "parent_job_id": job.parent_job_id,
        "last_error_type": job.last_error_type,
        "last_error_message": job.last_error_message,
        "content": _input_brief(job.content),
        "styles": [{**_input_brief(s.image), "weight": s.weight} for s in job.styles],
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }
    if runs:
        data["runs"] = [run_dict(r, artifacts=True) for r in job.runs]
    return data


def _job_options() -> list[Any]:
    return [selectinload(Job.content), selectinload(Job.styles).selectinload(JobStyle.image)]


# ---- images ------------------------------------------------------------------------------

IMAGE_SORTS = {"id": Image.id, "created": Image.created_at, "title": Image.title, "artist": Image.artist,
               "year": Image.year, "bytes": Image.bytes}


def list_images(session: Session, f: Filters = Filters()) -> list[dict[str, Any]]:
    query = select(Image).options(selectinload(Image.tags))
    if f.role:
        query = query.where(Image.role == f.role)
    if f.artist:
        query = query.where(contains_text(Image.artist, f.artist))
    if f.title:
        query = query.where(or_(contains_text(Image.title, f.title), contains_text(Image.source_name, f.title)))
    query = query.where(*(_tagged(Image.id, tag) for tag in normalize_tags(f.tags)))
    query = _dated(query, Image.created_at, f)
    query = _limited(_sorted(query, IMAGE_SORTS, f.sort, NEWEST_FIRST), f.limit, f.offset)
    return [image_dict(i) for i in session.scalars(query)]


def show_image(session: Session, ref: str) -> dict[str, Any]:
    image = find_image(session, ref)
    data = image_dict(image)
    used_as_style = select(func.count()).select_from(JobStyle).where(JobStyle.image_id == image.id)
    data["jobs_as_content"] = session.scalar(select(func.count()).select_from(Job).where(Job.content_id == image.id))
    data["jobs_as_style"] = session.scalar(used_as_style)
    return data


# ---- jobs --------------------------------------------------------------------------------

JOB_SORTS = {"id": Job.id, "created": Job.created_at, "updated": Job.updated_at, "priority": Job.priority,
             "status": Job.status, "attempts": Job.attempts}


def list_jobs(session: Session, f: Filters = Filters()) -> list[dict[str, Any]]:
    check_status(f.status, JobStatus)
    query = select(Job).options(*_job_options())
    if f.status:
        query = query.where(Job.status == f.status)
    query = _dated(_job_filters(session, query, f), Job.created_at, f)
    query = _limited(_sorted(query, JOB_SORTS, f.sort, NEWEST_FIRST), f.limit, f.offset)
    rows = [job_dict(j) for j in session.scalars(query)]
    films = films_segments(session, [row["id"] for row in rows if row["method"].startswith("video_")])
    for row in rows:  # a film shared by the fleet: how far it is across every host
        if row["id"] in films:
            row["frames_done"], row["frames_total"] = film_progress(films[row["id"]])
            row["segment_hosts"] = sorted({state.host for state in films[row["id"]] if state.host})
    return rows


def check_jobs_exist(session: Session, job_ids: Sequence[int]) -> None:
    """Raise NotFound naming every id in `job_ids` that is no job."""
    check_ids(job_ids, "job")
    known = set(session.scalars(select(Job.id).where(Job.id.in_(list(job_ids)))))
    unknown = sorted(set(job_ids) - known)
    if unknown:
        raise NotFound(f"no job with id {', '.join(map(str, unknown))}")


def show_job(session: Session, job_id: int) -> dict[str, Any]:
    """A job with its full history: every run, each with its artifacts."""
    check_ids([job_id], "job")
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(*_job_options(), selectinload(Job.runs).selectinload(Run.artifacts))
    )
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    data = job_dict(job, runs=True)
    segments = read_segment_states(session, job_id)
    if segments:  # a film shared by the fleet: its pieces, where they run and how far they are
        data["segments"] = [{**asdict(state), "frames": state.frames} for state in segments]
        data["frames_done"], data["frames_total"] = film_progress(segments)
    return data


# ---- runs --------------------------------------------------------------------------------

RUN_SORTS = {"id": Run.id, "started": Run.started_at, "duration": Run.duration_s, "status": Run.status}


def list_runs(session: Session, f: Filters = Filters()) -> list[dict[str, Any]]:
    check_status(f.status, RunStatus)
    query = select(Run, Job.method).join(Job, Run.job_id == Job.id)
    if f.status:
        query = query.where(Run.status == f.status)
    query = _dated(_job_filters(session, query, f), Run.started_at, f)
    query = _limited(_sorted(query, RUN_SORTS, f.sort, NEWEST_FIRST), f.limit, f.offset)
    rows = []
    for run, method in session.execute(query):
        data = run_dict(run)
        del data["error_traceback"]  # lists stay one line per run; `runs show` has it
        rows.append({**data, "method": method})
    return rows


def show_run(session: Session, run_id: int) -> dict[str, Any]:
    check_ids([run_id], "run")
    run = session.scalar(select(Run).where(Run.id == run_id).options(selectinload(Run.artifacts)))
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run_dict(run, artifacts=True)


# ---- artworks ----------------------------------------------------------------------------

ARTWORK_SORTS = {"id": Artifact.id, "created": Artifact.created_at, "duration": Run.duration_s}


def _artworks_query(session: Session, f: Filters, *, ids_only: bool = False) -> Select[Any]:
    """Output artifacts with their run and job, filtered; `ids_only` selects just the artifact ids."""
    query = (
        (select(Artifact.id) if ids_only else select(Artifact, Run, Job))
        .join(Run, Artifact.run_id == Run.id)
        .join(Job, Run.job_id == Job.id)
        .where(Artifact.kind == ArtifactKind.OUTPUT)
    )
    if not ids_only:
        query = query.options(selectinload(Run.artifacts), *_job_options())
    check_status(f.status, JobStatus)
    if f.status:
        query = query.where(Job.status == f.status)
    return _dated(_job_filters(session, query, f), Artifact.created_at, f)


def _artwork(artifact: Artifact, run: Run, job: Job) -> dict[str, Any]:
    """A produced output with what made it: job, run, inputs, method, parameters, runtime."""
    related = {a.kind: a.uri for a in run.artifacts if a.id != artifact.id}
    return {
        "id": artifact.id,
        "uri": artifact.uri,
        "sha256": artifact.sha256,
        "width": artifact.width,
        "height": artifact.height,
        "job_id": job.id,
        "run_id": run.id,
        "method": job.method,
        "params": run.params,
        "content": _input_brief(job.content),
        "styles": [{**_input_brief(s.image), "weight": s.weight} for s in job.styles],
        "duration_s": run.duration_s,
        "metrics": run.metrics,
        "device": run.device,
        "related_uris": related,
        "created_at": artifact.created_at,
    }


def list_artworks(session: Session, f: Filters = Filters()) -> list[dict[str, Any]]:
    query = _sorted(_artworks_query(session, f, ids_only=True), ARTWORK_SORTS, f.sort, NEWEST_FIRST)
    return _artworks_in_order(session, _limited(query, f.limit, f.offset))


def _artworks_in_order(session: Session, ordered_ids: Select[Any]) -> list[dict[str, Any]]:
    """The artworks whose ids `ordered_ids` selects, in its order. Two steps, so that the sort
    (over every matching row) carries ids and keys only, and whole rows are read for one page."""
    ids = list(session.scalars(ordered_ids))
    rows = {row[0].id: row for row in session.execute(_artworks_query(session, Filters()).where(Artifact.id.in_(ids)))}
    return [_artwork(*rows[i]) for i in ids]


def show_artwork(session: Session, artifact_id: int) -> dict[str, Any]:
    check_ids([artifact_id], "artwork")
    row = session.execute(_artworks_query(session, Filters()).where(Artifact.id == artifact_id)).first()
    if row is None:
        raise NotFound(f"no artwork with id {artifact_id}")
    return _artwork(*row)


def best_artworks(
    session: Session, metric: str, *, lowest: bool = False, f: Filters = Filters()
) -> list[dict[str, Any]]:
    """Artworks ranked by a run metric (highest first, or lowest first for losses)."""
    value = Run.metrics[metric].as_float()
    query = _artworks_query(session, f, ids_only=True).where(value.is_not(None))
    query = query.order_by(value.asc() if lowest else value.desc(), Artifact.id)
    return _artworks_in_order(session, _limited(query, f.limit, f.offset))


def check_known_method(session: Session, method: str, offered: Sequence[str] = ()) -> None:
    """Refuse a method that is neither `offered` nor any job's: a typo would list nothing."""
    if method in offered or session.scalar(select(exists().where(Job.method == method))):
        return
    present = sorted(session.scalars(select(Job.method).distinct()))
    raise InvalidRequest(f"method {method!r}: no job in the catalog has it (methods: {', '.join(present) or 'none'})")


def check_known_metric(session: Session, metric: str) -> None:
    """Refuse a metric that no run recorded: ranking by a typo would list nothing."""
    if not session.scalar(select(exists().where(Run.metrics[metric].as_string().is_not(None)))):
        raise InvalidRequest(f"metric {metric!r}: no run in the catalog records it")


# ---- statistics --------------------------------------------------------------------------


# Parameters that change what a run costs (evaluations, pixels, optimizer, numeric precision);
# runs that differ in any of them, or in device, are timed in separate rows.
COST_PARAMS = ("size", "iterations", "optimizer", "multiscale", "scales", "precision", "style_scale")


def runtime_stats(session: Session, f: Filters = Filters()) -> list[dict[str, Any]]:
    """Distribution of succeeded runs' durations per method, device and cost parameters
    (`COST_PARAMS` that the runs have; `scales` only counts when multiscale is on)."""
    query = select(Job.method, Run.params, Run.device, Run.duration_s).join(Job, Run.job_id == Job.id)
    query = query.where(Run.status == RunStatus.SUCCEEDED, Run.duration_s.is_not(None))
    query = _dated(_job_filters(session, query, f), Run.started_at, f)
    groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for method, params, device, duration in session.execute(query):
        groups[(method, device, *_cost_key(params or {}))].append(duration)
    rows = []
    for (method, device, *cost), durations in sorted(groups.items(), key=lambda item: [str(k) for k in item[0]]):
        durations.sort()
        rows.append({
            "method": method,
            **dict(zip(COST_PARAMS, cost, strict=True)),
            "device": device,
            "runs": len(durations),
            "min_s": durations[0],
            "median_s": statistics.median(durations),
            "p90_s": durations[min(len(durations) - 1, int(0.9 * len(durations)))],
            "max_s": durations[-1],
            "mean_s": statistics.fmean(durations),
        })
    return rows


def _cost_key(params: dict[str, Any]) -> list[Any]:
    key = [params.get(name) for name in COST_PARAMS]
    if not params.get("multiscale"):
        key[COST_PARAMS.index("scales")] = None
    return key


# ---- batches -----------------------------------------------------------------------------


def failed_jobs_by_batch(session: Session, limit: int = 500) -> list[dict[str, Any]]:
    """Failed jobs grouped by the batch (Prefect flow run) of their last attempt, newest batch first.

    Each group: `flow_run_id` (None for jobs whose last attempt has none), `job_ids`, and
    `last_failed_at`; what `rerun-failed --job` needs to finish one batch.
    """
    last_attempt = select(func.max(Run.attempt)).where(Run.job_id == Job.id).correlate(Job).scalar_subquery()
    query = (
        select(Job.id, Run.flow_run_id, Run.started_at)
        .join(Run, (Run.job_id == Job.id) & (Run.attempt == last_attempt))
        .where(Job.status == JobStatus.FAILED)
        .order_by(Run.started_at.desc(), Job.id.desc())
        .limit(limit)
    )
    batches: dict[str | None, dict[str, Any]] = {}
    for job_id, flow_run_id, started_at in session.execute(query):
        batch = batches.setdefault(flow_run_id, {"flow_run_id": flow_run_id, "job_ids": [], "last_failed_at": started_at})
        batch["job_ids"].append(job_id)
    return list(batches.values())


def images_by_id(session: Session, image_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Image records by id (the inputs shown beside an artwork)."""
    query = select(Image).where(Image.id.in_(list(image_ids))).options(selectinload(Image.tags))
    return {image.id: image_dict(image) for image in session.scalars(query)}


def run_file(session: Session, artwork_id: int, kind: str) -> dict[str, Any]:
    """The `kind` artifact (output, thumbnail) of the run that produced artwork `artwork_id`."""
    check_ids([artwork_id], "artwork")
    run_id = select(Artifact.run_id).where(Artifact.id == artwork_id, Artifact.kind == ArtifactKind.OUTPUT)
    artifact = session.scalar(
        select(Artifact).where(Artifact.run_id == run_id.scalar_subquery(), Artifact.kind == kind).limit(1)
    )
    if artifact is None:
        raise NotFound(f"no {kind} for artwork {artwork_id}")
    return artifact_dict(artifact)


def run_loss_curve(session: Session, run_id: int) -> dict[str, Any] | None:
    """The run's per-evaluation losses (`Run.loss_curve`, which listings never load)."""
    return session.scalar(select(Run.loss_curve).where(Run.id == run_id))


def job_status_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each status (every status listed, zero included)."""
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status.value: counts.get(status.value, 0) for status in JobStatus}

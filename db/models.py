"""Typed SQLAlchemy models of the catalog.

Every schema change needs an Alembic migration in db/migrations/versions; the migration
test fails when these models and the migrations disagree.

Statuses, roles and kinds are stored as short strings guarded by CHECK constraints, so
that the database stays readable from psql and adding a value is a one-line migration.
Tags live in their own table (not a JSON list) because "images tagged X" must be an
indexed query on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class ImageRole(StrEnum):
    CONTENT = "content"
    STYLE = "style"
    VIDEO = "video"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    WAITING = "waiting"  # a film planned into segments (child jobs): never claimed, assembled after them


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ArtifactKind(StrEnum):
    OUTPUT = "output"
    THUMBNAIL = "thumbnail"
    CONTACT_SHEET = "contact_sheet"
    CHECKPOINT = "checkpoint"
    VIDEO = "video"
    MODEL = "model"
    ORIGINAL = "original"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no time zones, so values are stored there as naive UTC and given their zone
    back on the way out; lease comparisons then mean the same thing on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the catalog stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


# Deterministic constraint names, so that migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Image(Base):
    """An input picture (content, style or video frame source), deduplicated by sha256."""

    __tablename__ = "images"
    __table_args__ = (_one_of("role", ImageRole),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str | None] = mapped_column(String(500))
    artist: Mapped[str | None] = mapped_column(String(300), index=True)
    year: Mapped[int | None] = mapped_column(Integer)
    license: Mapped[str | None] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    uri: Mapped[str] = mapped_column(String(1000))
    source_name: Mapped[str | None] = mapped_column(String(500))
    # Videos only (role video): frame rate, frame count and duration in seconds.
    fps: Mapped[float | None] = mapped_column(Float)
    frames: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    tags: Mapped[list[ImageTag]] = relationship(
        back_populates="image", cascade="all, delete-orphan", order_by="ImageTag.tag"
    )

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]


class ImageTag(Base):
    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)

    image: Mapped[Image] = relationship(back_populates="tags")


class Job(Base):
    """One stylization to do: a content image, ordered weighted styles, a method and parameters.

    `idempotency_key` makes adding the same work twice a no-op. `claimed_by` and
    `lease_expires_at` form the lease: a running job whose lease has passed is claimable
    again, because its worker is presumed dead.

    `attempts` counts every attempt ever made (it equals the job's runs, plus one while a
    claim has not started its run yet). Only `attempts - uncounted_attempts` is charged
    against `max_attempts`: a rerun forgives the attempts before it, and an attempt that
    was interrupted on request is forgiven too.
    """

    __tablename__ = "jobs"
    __table_args__ = (_one_of("status", JobStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    method: Mapped[str] = mapped_column(String(32), index=True)
    params: Mapped[dict[str, Any]]
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    uncounted_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    # A segment of a film is a job of its own, claimed by any host; its film is the parent.
    parent_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    last_error_type: Mapped[str | None] = mapped_column(String(200))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    content: Mapped[Image] = relationship(foreign_keys=[content_id])
    styles: Mapped[list[JobStyle]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobStyle.position"
    )
    runs: Mapped[list[Run]] = relationship(back_populates="job", order_by="Run.attempt")


# Claims scan this index in exactly their order (status, then highest priority, then oldest),
# so taking the next n jobs reads n index entries instead of sorting every pending job.
Index("ix_jobs_claim_order", Job.status, Job.priority.desc(), Job.id)


class JobStyle(Base):
    """The position-th style image of a job and its blend weight."""

    __tablename__ = "job_styles"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    weight: Mapped[float] = mapped_column(Float)

    job: Mapped[Job] = relationship(back_populates="styles")
    image: Mapped[Image] = relationship()


class Run(Base):
    """One attempt at a job, with everything needed to reproduce it and to explain it."""

    __tablename__ = "runs"
    __table_args__ = (
        _one_of("status", RunStatus),
        UniqueConstraint("job_id", "attempt", name="uq_runs_job_attempt"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING, index=True)
    worker: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]]
    seed: Mapped[int | None] = mapped_column(BigInteger)
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    device: Mapped[str | None] = mapped_column(String(100))
    host: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cache_hit: Mapped[bool | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    task_run_id: Mapped[str | None] = mapped_column(String(64))
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)
    # Per-evaluation losses ({"evaluation": [...], "total": [...], ...}) for the gallery's plot;
    # deferred, so listings never read it (see migration 0002).
    loss_curve: Mapped[dict[str, Any] | None] = mapped_column(deferred=True)

    job: Mapped[Job] = relationship(back_populates="runs")
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="run", order_by="Artifact.id")


class Artifact(Base):
    """An object in the artifact store that a run (or a job) produced."""

    __tablename__ = "artifacts"
    __table_args__ = (_one_of("kind", ArtifactKind),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    uri: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    width: Mapped[int | None]
    height: Mapped[int | None]
    frames: Mapped[int | None]
    fps: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    run: Mapped[Run | None] = relationship(back_populates="artifacts")


# The gallery's grid: output artifacts, newest first, a page at a time.
Index("ix_artifacts_kind_id", Artifact.kind, Artifact.id)


class Model(Base):
    """A trained feed-forward network (ITN) for one style, kept for the ITN method."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    method: Mapped[str] = mapped_column(String(32))
    style_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    style: Mapped[Image] = relationship()
    checkpoint: Mapped[Artifact] = relationship()

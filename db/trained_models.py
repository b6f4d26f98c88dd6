"""Trained style networks in the catalog: Model rows, their checkpoints, and finding them by name or id.

A training job (method ``itn-train``) stores checkpoints as it goes (Artifact rows of kind
``checkpoint`` on its run) and, when it finishes, the final weights (kind ``model``) and one Model
row naming them. A rerun of the same job resumes from the newest checkpoint of any earlier attempt.
A network imported from a file (``atelier models import``) has a Model row and weights but no run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.errors import InvalidRequest, NotFound
from db.models import Artifact, ArtifactKind, Model, Run
from db.runs import ArtifactRecord
from db.session import Catalog


@dataclass(frozen=True)
class ModelInfo:
    """A detached view of a Model row and of its stored weights."""

    id: int
    name: str
    method: str
    style_id: int
    run_id: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    uri: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "created_at": self.created_at.isoformat()}


def _info(model: Model) -> ModelInfo:
    weights = model.checkpoint
    return ModelInfo(
        model.id, model.name, model.method, model.style_id, model.run_id, dict(model.params), dict(model.metrics),
        model.created_at, weights.uri, weights.sha256, weights.bytes,
    )


def _artifact(record: ArtifactRecord, run_id: int | None, job_id: int | None) -> Artifact:
    return Artifact(
        run_id=run_id, job_id=job_id, kind=record.kind, uri=record.uri, sha256=record.sha256, bytes=record.bytes,
        content_type=record.content_type,
    )


def add_checkpoint(catalog: Catalog, run_id: int, job_id: int, record: ArtifactRecord) -> int:
    """Record a stored training checkpoint of a run; returns the artifact id."""
    with catalog.session() as session:
        artifact = _artifact(record, run_id, job_id)
        session.add(artifact)
        session.flush()
        return artifact.id


def latest_checkpoint(catalog: Catalog, job_id: int) -> tuple[str, str] | None:
    """(uri, sha256) of the newest checkpoint any attempt of ``job_id`` stored, or None."""
    with catalog.reader() as session:
        row = session.execute(
            select(Artifact.uri, Artifact.sha256)
            .where(Artifact.job_id == job_id, Artifact.kind == ArtifactKind.CHECKPOINT.value)
            .order_by(Artifact.id.desc())
            .limit(1)
        ).first()
    return (row.uri, row.sha256) if row is not None else None


def record_model(
    catalog: Catalog,
    *,
    name: str,
    method: str,
    style_id: int,
    run_id: int,
    job_id: int,
    weights: ArtifactRecord,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> int:
    """Store the Model row and the artifact of its final weights in one transaction; returns the model id.

    A name is unique: a second model under a taken name is refused rather than replacing the first,
    which gallery jobs may already use. Recording is idempotent per job, for an attempt that is
    retried after this point.
    """
    with catalog.session() as session:
        taken = session.scalar(select(Model).where(Model.name == name))
        if taken is not None and taken.run_id is not None and session.get(Run, taken.run_id).job_id == job_id:
            return taken.id  # an earlier attempt of this very job got this far: nothing to add
        if taken is not None:
            raise InvalidRequest(f"model name {name!r} is taken (model {taken.id}); choose another name")
        artifact = _artifact(weights, run_id, job_id)
        model = Model(
            name=name, method=method, style_id=style_id, checkpoint=artifact, run_id=run_id,
            params=dict(params), metrics=dict(metrics),
        )
        session.add(model)
        session.flush()
        return model.id


def record_import(
    catalog: Catalog, *, name: str, style_id: int, weights: ArtifactRecord, params: Mapping[str, Any], metrics: Mapping[str, Any]
) -> int:
    """Store the Model row of a network trained elsewhere (no run, no job) and its weights' artifact."""
    with catalog.session() as session:
        taken = session.scalar(select(Model.id).where(Model.name == name))
        if taken is not None:
            raise InvalidRequest(f"model name {name!r} is taken (model {taken}); choose another name")
        model = Model(name=name, method="itn", style_id=style_id, checkpoint=_artifact(weights, None, None), params=dict(params), metrics=dict(metrics))
        session.add(model)
        session.flush()
        return model.id


def find_model(session: Session, reference: str) -> ModelInfo:
    """The model called ``reference``, or numbered so when it is all digits and no model has that name."""
    query = select(Model).options(selectinload(Model.checkpoint))
    model = session.scalar(query.where(Model.name == reference))
    if model is None and reference.isdigit():
        model = session.scalar(query.where(Model.id == int(reference)))
    if model is None:
        raise NotFound(f"model {reference!r}: no trained model has that name or id (see `atelier models ls`)")
    return _info(model)


def model_name_taken(session: Session, name: str) -> bool:
    return session.scalar(select(Model.id).where(Model.name == name)) is not None


def list_models(session: Session) -> Sequence[ModelInfo]:
    """Every trained model, newest first."""
    models = session.scalars(select(Model).options(selectinload(Model.checkpoint)).order_by(Model.id.desc()))
    return [_info(m) for m in models]


def current_run_id(catalog: Catalog, job_id: int, worker: str) -> int:
    """The open Run of ``job_id`` held by ``worker`` (where a task files its checkpoints)."""
    with catalog.reader() as session:
        run_id = session.scalar(
            select(Run.id).where(Run.job_id == job_id, Run.worker == worker, Run.status == "running").order_by(Run.id.desc())
        )
    if run_id is None:
        raise NotFound(f"job {job_id} has no running attempt by {worker}")
    return run_id

"""Catalog questions that only orchestration asks (an adapter over db.models, read-only)."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Run
from db.session import Catalog


def jobs_of_flow_run(catalog: Catalog, flow_run_id: str) -> list[int]:
    """Jobs that a flow run attempted, across all of its (retried) attempts."""
    with catalog.reader() as session:
        return sorted(set(session.scalars(select(Run.job_id).where(Run.flow_run_id == flow_run_id))))

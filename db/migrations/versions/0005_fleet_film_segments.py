"""fleet: a film's segments are child jobs (jobs.parent_job_id), and a planned film waits for them

A video job long enough to share is planned into segments, each a job of its own claimed by
any host; the film itself becomes `waiting` (never claimed) until its last segment succeeds
and one worker assembles it. The CHECK on jobs.status gains `waiting`.

Revision ID: fleet_0005_segments
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fleet_0005_segments"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')"
AFTER = "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'waiting')"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_job_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f("fk_jobs_parent_job_id_jobs"), "jobs", ["parent_job_id"], ["id"],
                                 ondelete="CASCADE")
        batch.create_index(batch.f("ix_jobs_parent_job_id"), ["parent_job_id"], unique=False)
        batch.drop_constraint(batch.f("ck_jobs_status_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_jobs_status_valid"), AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE parent_job_id IS NOT NULL")
    op.execute("UPDATE jobs SET status = 'pending' WHERE status = 'waiting'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(batch.f("ck_jobs_status_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_jobs_status_valid"), BEFORE)
        batch.drop_index(batch.f("ix_jobs_parent_job_id"))
        batch.drop_constraint(batch.f("fk_jobs_parent_job_id_jobs"), type_="foreignkey")
        batch.drop_column("parent_job_id")

"""jobs.attempts counts every attempt; uncounted_attempts holds those forgiven (reruns, interruptions)

Before, a rerun reset `attempts` to 0, so a job with runs for attempts 1, 2 and 3 showed
one attempt. Existing jobs get `attempts` = at least their number of runs, and the
difference is forgiven, so each keeps the attempt budget it had.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("uncounted_attempts", sa.Integer(), nullable=False, server_default="0"))
    runs = "(SELECT COUNT(*) FROM runs WHERE runs.job_id = jobs.id)"
    op.execute(
        f"UPDATE jobs SET uncounted_attempts = {runs} - attempts, attempts = {runs} WHERE {runs} > attempts"
    )


def downgrade() -> None:
    op.execute("UPDATE jobs SET attempts = attempts - uncounted_attempts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("uncounted_attempts")

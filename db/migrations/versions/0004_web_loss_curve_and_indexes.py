"""web: runs.loss_curve, and the index the gallery's grid reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:10:00

The per-evaluation loss curve gets a column of its own, apart from `metrics`: the grid and a
ranking by a metric read every run's metrics, and a 200-point curve in there would make
each of those reads parse ~12 KB of JSON per run. The column is loaded only by the artwork page.
The grid lists output artifacts newest first; (kind, id) lets it read a page off the index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('loss_curve', sa.JSON(), nullable=True))
    op.create_index('ix_artifacts_kind_id', 'artifacts', ['kind', 'id'])


def downgrade() -> None:
    op.drop_index('ix_artifacts_kind_id', table_name='artifacts')
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('loss_curve')

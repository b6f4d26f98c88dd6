"""video media: frame rate, frame count and duration of video images

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('fps', sa.Float(), nullable=True))
        batch.add_column(sa.Column('frames', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('duration_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_column('duration_s')
        batch.drop_column('frames')
        batch.drop_column('fps')

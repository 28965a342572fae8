"""Service stats: counters every host adds to, for GET /metrics (jobs finished, heartbeat failures,
the queue-wait and duration histograms' buckets)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'service_stats',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('labels', sa.String(length=300), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name', 'labels', name=op.f('pk_service_stats')),
    )


def downgrade() -> None:
    op.drop_table('service_stats')

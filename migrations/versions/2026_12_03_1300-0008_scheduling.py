"""Scheduling: a job's priority and device, the workers alive and what they serve, when a tenant
last started a job (fair share), and the index the claim reads queued jobs by

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db.types

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('device', sa.String(length=8), server_default='any', nullable=False))
        batch_op.create_index('ix_jobs_tenant_next', ['tenant_id', 'state', 'priority', 'created_at', 'id'], unique=False)
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_started_at', app.core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('max_priority', sa.Integer(), nullable=True))
    op.create_table(
        'workers',
        sa.Column('id', sa.String(length=200), nullable=False),
        sa.Column('device', sa.String(length=8), nullable=False),
        sa.Column('started_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('job_id', sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('workers')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('max_priority')
        batch_op.drop_column('last_started_at')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_tenant_next')
        batch_op.drop_column('device')
        batch_op.drop_column('priority')

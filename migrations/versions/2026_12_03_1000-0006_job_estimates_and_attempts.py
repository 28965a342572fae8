"""jobs.estimate (what a worker needs to hold the job); job_attempts (how each attempt went)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db.types

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estimate', sa.JSON(), nullable=True))
    op.create_table(
        'job_attempts',
        sa.Column('job_id', sa.String(length=40), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('worker_id', sa.String(length=200), nullable=False),
        sa.Column('started_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', app.core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('resumed_from_step', sa.BigInteger(), nullable=True),
        sa.Column('checkpoint_step', sa.BigInteger(), nullable=True),
        sa.Column('last_step', sa.BigInteger(), nullable=False),
        sa.Column('peak_memory_bytes', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_attempts_job_id_jobs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_job_attempts_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'attempt', name=op.f('pk_job_attempts')),
    )


def downgrade() -> None:
    op.drop_table('job_attempts')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('estimate')

"""Metric roll-ups: each series summed up per aligned stretch of steps, so a downsampled read of a
million-point series reads about a thousand rows (bench/scale.py measured 194x at 1M points without)

The upgrade builds the roll-ups of the points already written, a job at a time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'metric_rollups',
        sa.Column('job_id', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.BigInteger(), nullable=False),
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('first_step', sa.BigInteger(), nullable=False),
        sa.Column('first_epoch', sa.Integer(), nullable=False),
        sa.Column('first_value', sa.Float(), nullable=False),
        sa.Column('first_time_us', sa.BigInteger(), nullable=False),
        sa.Column('last_step', sa.BigInteger(), nullable=False),
        sa.Column('last_epoch', sa.Integer(), nullable=False),
        sa.Column('last_value', sa.Float(), nullable=False),
        sa.Column('last_time_us', sa.BigInteger(), nullable=False),
        sa.Column('low_step', sa.BigInteger(), nullable=False),
        sa.Column('low_epoch', sa.Integer(), nullable=False),
        sa.Column('low_value', sa.Float(), nullable=False),
        sa.Column('low_time_us', sa.BigInteger(), nullable=False),
        sa.Column('high_step', sa.BigInteger(), nullable=False),
        sa.Column('high_epoch', sa.Integer(), nullable=False),
        sa.Column('high_value', sa.Float(), nullable=False),
        sa.Column('high_time_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_metric_rollups_job_id_jobs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_metric_rollups_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'name', 'level', 'bucket', name=op.f('pk_metric_rollups')),
    )
    from app.core.jobs import metric_rollups  # the same code that keeps them as points arrive

    session = Session(bind=op.get_bind())
    for job_id, tenant_id in session.execute(sa.text("SELECT DISTINCT job_id, tenant_id FROM metric_points")).all():
        metric_rollups.rebuild(session=session, tenant_id=tenant_id, job_id=job_id)
    session.flush()


def downgrade() -> None:
    op.drop_table('metric_rollups')

"""Job labels, a row each, so GET /v1/jobs?label=key:value is an index probe per label; the
answers of creates made with an Idempotency-Key; a running job's pace (steps a second), for its ETA

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db.types

revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('steps_per_second', sa.Float(), nullable=True))
    op.create_table(
        'job_labels',
        sa.Column('job_id', sa.String(length=40), nullable=False),
        sa.Column('key', sa.String(length=63), nullable=False),
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_labels_job_id_jobs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_job_labels_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'key', name=op.f('pk_job_labels')),
    )
    with op.batch_alter_table('job_labels', schema=None) as batch_op:
        batch_op.create_index('ix_job_labels_tenant_key_value', ['tenant_id', 'key', 'value'], unique=False)
    op.create_table(
        'idempotency_keys',
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('route', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('location', sa.String(length=500), nullable=True),
        sa.Column('created_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_idempotency_keys_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tenant_id', 'route', 'key', name=op.f('pk_idempotency_keys')),
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_tenant_created', ['tenant_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('steps_per_second')
    op.drop_table('idempotency_keys')
    op.drop_table('job_labels')

"""API keys with names, scopes, expiry and last use; tenant quotas; checkpoint bytes per job

Keys made before this keep every scope they had (all of them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db.types

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=100), server_default='', nullable=False))
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', app.core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', app.core.db.types.UTCDateTime(timezone=True), nullable=True))
    op.execute("""UPDATE api_keys SET scopes = '["read", "train", "predict", "admin"]'""")
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.alter_column('scopes', existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_running_jobs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_queued_jobs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_storage_bytes', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkpoint_bytes', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('checkpoint_bytes')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('max_storage_bytes')
        batch_op.drop_column('max_queued_jobs')
        batch_op.drop_column('max_running_jobs')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('scopes')
        batch_op.drop_column('name')

"""A tenant's jobs of one kind and state, newest first: a page filtered by state reads only its page

bench/scale.py measured GET /v1/jobs?state=running at 1.66x its time when the table grew from
1,000 to 100,000 jobs: the list walked the tenant's jobs newest first, skipping other states.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:30:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_tenant_kind_state_created', ['tenant_id', 'kind', 'state', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_tenant_kind_state_created')

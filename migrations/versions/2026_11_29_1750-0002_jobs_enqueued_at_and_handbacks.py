"""jobs enqueued_at and handbacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 17:50:40.759658
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db.types

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handbacks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('enqueued_at', app.core.db.types.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('handbacks')


"""jobs kind (training or batch inference); models serving options

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:45:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='train', nullable=False))
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('serving', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('serving')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('kind')

"""64-bit steps and sizes: a model over 2 GiB or a job past 2^31 steps overflowed PostgreSQL's INTEGER

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = {
    'jobs': ('step', 'total_steps'),
    'metric_points': ('step',),
    'models': ('parameter_count', 'size_bytes'),
}


def upgrade() -> None:
    # SQLite stores every INTEGER in up to 8 bytes already; rebuilding its tables would gain nothing.
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)

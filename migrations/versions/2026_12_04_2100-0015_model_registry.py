"""The model registry: registered names, their versions, aliases and each alias's moves

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 21:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db.types

revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'registered_models',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('created_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_registered_models_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_registered_models')),
        sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_registered_models_tenant_id')),
    )
    op.create_index('ix_registered_models_tenant_created', 'registered_models', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_table(
        'model_versions',
        sa.Column('registered_model_id', sa.String(length=40), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.String(length=40), nullable=False),
        sa.Column('created_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_model_versions_model_id_models'), ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'],
                                name=op.f('fk_model_versions_registered_model_id_registered_models'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('registered_model_id', 'version', name=op.f('pk_model_versions')),
    )
    op.create_index(op.f('ix_model_versions_model_id'), 'model_versions', ['model_id'], unique=False)
    op.create_table(
        'model_aliases',
        sa.Column('registered_model_id', sa.String(length=40), nullable=False),
        sa.Column('alias', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('previous_version', sa.Integer(), nullable=True),
        sa.Column('effective_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'],
                                name=op.f('fk_model_aliases_registered_model_id_registered_models'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('registered_model_id', 'alias', name=op.f('pk_model_aliases')),
    )
    op.create_table(
        'alias_moves',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('registered_model_id', sa.String(length=40), nullable=False),
        sa.Column('alias', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('previous_version', sa.Integer(), nullable=True),
        sa.Column('effective_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('moved_at', app.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('key_id', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'],
                                name=op.f('fk_alias_moves_registered_model_id_registered_models'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_moves')),
    )
    op.create_index('ix_alias_moves_alias', 'alias_moves', ['registered_model_id', 'alias', 'id'], unique=False)


def downgrade() -> None:
    op.drop_table('alias_moves')
    op.drop_table('model_aliases')
    op.drop_table('model_versions')
    op.drop_table('registered_models')

"""rule versions and activations (dispatch_rules/models.py)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rule_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=120), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=True),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rule_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_versions_content_hash'), ['content_hash'], unique=False)

    op.create_table('rule_activations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['rule_versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rule_activations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_activations_version_id'), ['version_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rule_activations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_activations_version_id'))

    op.drop_table('rule_activations')
    with op.batch_alter_table('rule_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_versions_content_hash'))

    op.drop_table('rule_versions')

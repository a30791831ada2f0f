"""direct answers: calls the agent answered on the phone without a ticket (consoles/models.py), for 直接答复率

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 13:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('direct_answers',
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('agent', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('district', sa.String(length=64), nullable=True),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('case_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('call_id')
    )
    op.create_index('ix_direct_answers_answered_at', 'direct_answers', ['answered_at'])
    op.create_index('ix_direct_answers_district', 'direct_answers', ['district'])
    op.create_index('ix_direct_answers_case_id', 'direct_answers', ['case_id'])


def downgrade() -> None:
    op.drop_table('direct_answers')

"""agent assist: recent call embeddings, ticket view, suggestion feedback (classifiers/assist_store.py)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 11:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assist_calls',
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('district', sa.String(length=64), nullable=True),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('call_id')
    )
    op.create_index('ix_assist_calls_district', 'assist_calls', ['district'])
    op.create_index('ix_assist_calls_received_at', 'assist_calls', ['received_at'])
    op.create_table('assist_ticket_view',
    sa.Column('source_event_id', sa.String(length=160), nullable=False),
    sa.Column('ticket_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('department', sa.String(length=120), nullable=True),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source_event_id')
    )
    op.create_table('suggestion_feedback',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('case_id', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('agent', sa.String(length=120), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_suggestion_feedback_call_id', 'suggestion_feedback', ['call_id'])
    op.create_index('ix_suggestion_feedback_case_id', 'suggestion_feedback', ['case_id'])


def downgrade() -> None:
    op.drop_table('suggestion_feedback')
    op.drop_table('assist_ticket_view')
    op.drop_table('assist_calls')

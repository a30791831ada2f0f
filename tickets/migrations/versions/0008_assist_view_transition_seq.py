"""assist ticket view keeps the transition_seq of the event it shows, so a repeated (older) event is ignored

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 16:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assist_ticket_view') as batch:
        batch.add_column(sa.Column('transition_seq', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assist_ticket_view') as batch:
        batch.drop_column('transition_seq')

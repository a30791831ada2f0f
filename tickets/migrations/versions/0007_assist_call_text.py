"""assist calls keep their text (repeat reports are found by shared rare bigrams) instead of the e5 embedding

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assist_calls') as batch:
        batch.add_column(sa.Column('city_wide', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('text', sa.Text(), nullable=False, server_default=''))
        batch.drop_column('embedding')
        batch.create_index('ix_assist_calls_city_wide', ['city_wide'])


def downgrade() -> None:
    # the embeddings are gone; the rows are a 30-day memory of recent calls, so they go with them
    op.execute("DELETE FROM assist_calls")
    with op.batch_alter_table('assist_calls') as batch:
        batch.drop_index('ix_assist_calls_city_wide')
        batch.drop_column('text')
        batch.drop_column('city_wide')
        batch.add_column(sa.Column('embedding', sa.LargeBinary(), nullable=False))

"""ticket lifecycle: escalation, handling notes, callbacks, attachments, API users, Open311 requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_level', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolution_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('satisfaction', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_deadline_at'), ['deadline_at'], unique=False)

    with op.batch_alter_table('ticket_transitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('department', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('details', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ticket_transitions_at'), ['at'], unique=False)

    op.create_table('ticket_attachments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ticket_id', sa.String(length=40), nullable=False),
    sa.Column('transition_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.ForeignKeyConstraint(['transition_id'], ['ticket_transitions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ticket_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_attachments_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('api_users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('department', sa.String(length=120), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('api_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_users_token_hash'), ['token_hash'], unique=True)

    op.create_table('open311_requests',
    sa.Column('service_request_id', sa.String(length=64), nullable=False),
    sa.Column('service_code', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('address_string', sa.String(length=300), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('long', sa.Float(), nullable=True),
    sa.Column('media_url', sa.String(length=500), nullable=True),
    sa.Column('submitted_by', sa.String(length=120), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('service_request_id')
    )
    with op.batch_alter_table('open311_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_open311_requests_service_code'), ['service_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_open311_requests_requested_at'), ['requested_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('open311_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_open311_requests_requested_at'))
        batch_op.drop_index(batch_op.f('ix_open311_requests_service_code'))
    op.drop_table('open311_requests')

    with op.batch_alter_table('api_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_users_token_hash'))
    op.drop_table('api_users')

    with op.batch_alter_table('ticket_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_attachments_ticket_id'))
    op.drop_table('ticket_attachments')

    with op.batch_alter_table('ticket_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_transitions_at'))
        batch_op.drop_column('details')
        batch_op.drop_column('department')

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_deadline_at'))
        batch_op.drop_column('satisfaction')
        batch_op.drop_column('resolution_note')
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('escalation_level')

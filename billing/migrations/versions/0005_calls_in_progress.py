"""calls in progress: what a listing and a forced disconnect need, ended calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 21:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disconnect_port', sa.Integer(), server_default='3799',
                                      nullable=False))
    with op.batch_alter_table('active_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_id', sa.String(length=253), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('user_name', sa.String(length=253), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('credit_time', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('leg_conf_id', sa.String(length=253), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('incoming_conf_id', sa.String(length=253),
                                      server_default='', nullable=False))
    op.create_table('ended_calls',
    sa.Column('conf_id', sa.String(length=128), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=False),
    sa.Column('forget_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('conf_id')
    )
    with op.batch_alter_table('ended_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ended_calls_forget_at'), ['forget_at'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('ended_calls')
    with op.batch_alter_table('active_calls', schema=None) as batch_op:
        batch_op.drop_column('incoming_conf_id')
        batch_op.drop_column('leg_conf_id')
        batch_op.drop_column('credit_time')
        batch_op.drop_column('user_name')
        batch_op.drop_column('session_id')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_column('disconnect_port')

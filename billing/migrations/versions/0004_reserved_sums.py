"""reserved sums and shared logins: the database arbitrates reservations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 20:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=16, scale=5)
# compared with call keys: byte for byte on MariaDB, as active_calls.conf_id (0002)
CALL_KEY = sa.String(128).with_variant(mysql.VARCHAR(128, collation="utf8mb4_nopad_bin"),
                                       "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved', MONEY, server_default='0', nullable=False))
        batch_op.add_column(sa.Column('max_calls', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('calls', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved', MONEY, server_default='0', nullable=False))
        batch_op.add_column(sa.Column('login_call', CALL_KEY, server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('login_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('max_calls', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('calls', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('active_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_active_calls_customer', 'customers', ['customer_id'],
                                    ['id'])
    op.create_table('engine_heartbeats',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=64), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('listen', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('accepts', sa.Integer(), nullable=False),
    sa.Column('accountings', sa.Integer(), nullable=False),
    sa.Column('db_errors', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('engine_heartbeats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engine_heartbeats_seen_at'), ['seen_at'],
                              unique=False)
    # Calls in progress written by an older engine: their sums start right.
    op.execute("UPDATE accounts SET reserved = COALESCE((SELECT SUM(c.reserved) FROM "
               "active_calls c WHERE c.account_id = accounts.id AND c.leg = 'authorize'), 0), "
               "calls = (SELECT COUNT(*) FROM active_calls c WHERE c.account_id = accounts.id "
               "AND c.leg = 'authorize')")
    op.execute("UPDATE customers SET calls = COALESCE((SELECT SUM(a.calls) FROM accounts a "
               "WHERE a.customer_id = customers.id), 0)")


def downgrade() -> None:
    op.drop_table('engine_heartbeats')
    with op.batch_alter_table('active_calls', schema=None) as batch_op:
        batch_op.drop_constraint('fk_active_calls_customer', type_='foreignkey')
        batch_op.drop_column('customer_id')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('calls')
        batch_op.drop_column('max_calls')
        batch_op.drop_column('login_until')
        batch_op.drop_column('login_call')
        batch_op.drop_column('reserved')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('calls')
        batch_op.drop_column('max_calls')
        batch_op.drop_column('reserved')

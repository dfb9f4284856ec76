"""account adjustments: admin top-ups and charges, audited (who, when, why)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 20:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_adjustments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=16, scale=5), nullable=False),
    sa.Column('balance_before', sa.Numeric(precision=16, scale=5), nullable=False),
    sa.Column('balance_after', sa.Numeric(precision=16, scale=5), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_account_adjustments_account', 'account_adjustments',
                    ['account_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_account_adjustments_account', table_name='account_adjustments')
    op.drop_table('account_adjustments')

"""exact record keys: binary collation, digest form for long keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 20:10:00

Record identities (session keys of processed and quarantined accountings
and of xDRs, conf-ids of calls in progress) are compared byte for byte on
MariaDB: its default collation made "ABC" and "abc " the same record. Keys
of 180 characters or more now take the digest form of billing.record_key;
processed and quarantined keys stored whole at 180..190 characters are
rewritten to it, so a retransmission after the upgrade is still recognised.
(Keys of 191 characters were cut by earlier versions: their whole value is
unknown and they are left as they are.)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from billing.record_key import SESSION_KEY_WIDTH, bounded

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_EXACT = "utf8mb4_nopad_bin"
_KEYS = (("processed_accounting", "session_key", 191),
         ("quarantined_accounting", "session_key", 191),
         ("account_xdrs", "session_key", 191),
         ("vendor_xdrs", "session_key", 191),
         ("active_calls", "conf_id", 128))


def _collate(collation: str | None) -> None:
    for table, column, width in _KEYS:
        op.alter_column(table, column, existing_nullable=False,
                        type_=sa.String(width, collation=collation),
                        existing_type=sa.String(width))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name in ("mysql", "mariadb"):
        _collate(_EXACT)
    for table in ("processed_accounting", "quarantined_accounting"):
        t = sa.table(table, sa.column("session_key", sa.String))
        rows = bind.execute(sa.select(t.c.session_key).where(
            sa.func.length(t.c.session_key) >= SESSION_KEY_WIDTH,
            sa.func.length(t.c.session_key) < 191)).scalars().all()
        for key in rows:
            bind.execute(t.update().where(t.c.session_key == key).values(
                session_key=bounded(key, SESSION_KEY_WIDTH)))


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        _collate(None)

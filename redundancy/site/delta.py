"""The delta database: what the secondary site did while stand-alone.

A separate database on the stand-by server (the stand-by itself is a
read-only replica). Every row is written in the same transaction as the
charge it records, so what is in the delta is exactly what was charged:

- ``delta_xdrs``: one row per xDR, numbered by ``seq`` (auto-increment, never
  reused); ``seq`` with the site name is the key the xDR keeps on the
  primary, so a transfer can never insert it twice. ``adjustment`` is the
  signed change of the owner's balance (what the primary's engine would have
  done); the effective balance is the stand-by balance plus these.
- ``delta_processed``: accounting records already charged here (a
  retransmitted Stop is acknowledged, not charged again). Keys use the
  billing database's exact (binary, no-pad) key columns.
- ``delta_calls``: reservations of calls being authorised here.
- ``delta_logins``: the login holds of debit accounts under
  ``[Fraud_Detection]`` (``accounts.login_call``/``login_until`` of the
  primary, which the read-only stand-by cannot keep): one row per account
  ever held here, taken and given back by conditional UPDATEs.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    event,
)
from sqlalchemy.engine import URL, Engine, make_url

from billing.db import engine_for_url
from billing.models import CALL_KEY, SESSION_KEY
from vigil.config import Config

log = logging.getLogger(__name__)

MONEY = Numeric(16, 5)
metadata = MetaData()

# BigInteger seq: SQLite wants INTEGER PRIMARY KEY for auto-increment
SEQ = BigInteger().with_variant(Integer(), "sqlite")

delta_xdrs = Table(
    "delta_xdrs", metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # account | vendor
    Column("owner_pk", Integer, nullable=False),  # account or vendor pk
    Column("customer_pk", Integer, nullable=True),  # credit accounts: the customer owes too
    Column("billing_model", String(6), nullable=False, default="debit"),
    Column("adjustment", MONEY, nullable=False),  # signed change of the owner's balance
    Column("customer_adjustment", MONEY, nullable=False, default=0),
    Column("connection_pk", Integer, nullable=True),
    Column("session_key", SESSION_KEY, nullable=False),
    # the accounting record that made it: failback marks it processed on the
    # primary, so a Stop retransmitted there later is not charged again
    Column("stop_key", SESSION_KEY, nullable=False, default=""),
    Column("conf_id", String(128), nullable=False, default=""),
    Column("cli", String(64), nullable=False, default=""),
    Column("cld", String(64), nullable=False, default=""),
    Column("peer_ip", String(45), nullable=False, default=""),
    Column("connect_time", DateTime, nullable=True),
    Column("disconnect_time", DateTime, nullable=True),
    Column("duration", Integer, nullable=False, default=0),
    Column("charged_duration", Integer, nullable=False, default=0),
    Column("amount", MONEY, nullable=False),
    Column("tariff", String(64), nullable=False, default=""),
    Column("rate_prefix", String(32), nullable=False, default=""),
    Column("disconnect_cause", String(16), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Index("ix_delta_xdrs_owner", "kind", "owner_pk", "seq"),
    Index("ix_delta_xdrs_customer", "customer_pk", "seq"),
)

delta_processed = Table(
    "delta_processed", metadata,
    Column("session_key", SESSION_KEY, primary_key=True),
    Column("processed_at", DateTime, nullable=False),
)

delta_calls = Table(
    "delta_calls", metadata,
    Column("call_key", CALL_KEY, primary_key=True),
    Column("account_pk", Integer, nullable=False, index=True),
    Column("reserved", MONEY, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

# Rows are given back (login_call = ''), never deleted: a row that stays is
# what lets a take be ONE conditional UPDATE (an insert racing another
# engine's would need a lock on a row that does not exist yet).
delta_logins = Table(
    "delta_logins", metadata,
    Column("account_pk", Integer, primary_key=True, autoincrement=False),
    Column("login_call", CALL_KEY, nullable=False, default=""),
    Column("login_until", DateTime, nullable=True),
)


def delta_url(cfg: Config) -> URL:
    from pathlib import Path

    url = make_url(cfg.get("Delta", "URL"))
    if url.get_backend_name() == "sqlite":
        db = url.database or "delta.db"
        if not Path(db).is_absolute():
            db = str(cfg.path("Site", "State_Dir") / db)
        return url.set(database=db)
    if cfg.get("Delta", "User"):
        url = url.set(username=cfg.get("Delta", "User"))
    if cfg.get("Delta", "Password").reveal():
        url = url.set(password=cfg.get("Delta", "Password").reveal())
    return url


def make_delta_engine(url: URL | str, skip_binlog: bool = True,
                      connect_timeout: int = 2) -> Engine:
    engine = engine_for_url(url, connect_timeout=connect_timeout, pool_size=4)
    if engine.dialect.name != "sqlite" and skip_binlog:
        @event.listens_for(engine, "connect")
        def _no_binlog(dbapi_conn: Any, _rec: Any) -> None:
            # The delta lives on the stand-by replica's server: logged writes
            # there would be errant GTIDs that replication repair must undo.
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin=0")
    return engine


def delta_engine(cfg: Config) -> Engine:
    return make_delta_engine(delta_url(cfg), cfg.get("Delta", "Skip_Binlog"),
                             cfg.get("Delta", "Connect_Timeout_sec"))


def create(engine: Engine) -> None:
    """Create the delta tables (idempotent)."""
    metadata.create_all(engine)

delta_quarantined = Table(
    "delta_quarantined", metadata,
    Column("session_key", SESSION_KEY, primary_key=True),
    Column("reason", String(255), nullable=False),
    Column("attributes", String(8000), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

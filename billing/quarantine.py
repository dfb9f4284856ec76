"""Turning an accounting record into a quarantined one.

A quarantined record is acknowledged to the gateway (so it stops
retransmitting) but neither charged nor dropped: its attributes and the
reason are kept in ``quarantined_accounting`` for an admin. The engine
quarantines what it cannot rate (billing/engine.py); the store quarantines
a Stop the database refuses to hold (billing/store.py), alone, so the rest
of its group commit is stored and answered.

The op is changed in place, so every layer that holds it (the cached store
settling its balances, the server counting and answering) sees one truth:
this record charged nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billing.store import AccountingOp


def can_replace(op: AccountingOp) -> bool:
    """Only a Stop carries charges worth keeping; a failing quarantine, Start
    or reservation has nothing better to become."""
    return op.kind == "stop" and bool(op.session_key)


def replace(op: AccountingOp, reason: str) -> None:
    op.raw = {
        "call_key": op.call_key, "leg": op.leg, "node_ip": op.node_ip, "cli": op.cli,
        "cld": op.cld, **op.raw,
        "xdrs": [{"table": x.table, "owner": x.owner_pk, "conf_id": x.conf_id,
                  "duration": x.duration, "amount": str(x.amount), "tariff": x.tariff,
                  "rate_prefix": x.rate_prefix} for x in op.xdrs],
    }
    op.kind = "quarantine"
    op.quarantine_reason = reason
    op.xdrs = []
    op.account_pk = op.customer_pk = None

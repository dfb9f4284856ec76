"""Calls in progress: their lifetimes ([Call_Cleanup]) and the queries on them.

A call is in ``active_calls`` from its authorization (the row that holds the
reservation and the call slot, ``leg = 'authorize'``) and from its accounting
Start (one row per leg) until its Stop, whichever engine saw each packet,
because the rows live in the shared database. What the store does with
Starts and keep-alives is decided here, inside its transaction:

- a Start for a call whose Stop was applied less than the gateway's last
  possible retransmit ago (``ended_calls``) is ignored, so a late or
  re-ordered Start never brings an ended call back;
- a duplicate Start (the same leg already listed) is ignored;
- a Start with no authorization is listed, holds no money and no call slot
  (limits are enforced at authorization), and is logged;
- a keep-alive (Interim-Update) pushes the call's expiry to
  ``Alive_Interval`` plus the retransmit window from now.

Every row has an ``expires_at``; the engine's expiry chore deletes rows past
it (a lost Stop never leaves a ghost) and gives their reservations back.
This module imports no other billing module but the models.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.engine import Connection

from billing import models as m

log = logging.getLogger("billing.calls")

FUNDS_LOCK = "funds_lock"
AUTHORIZE = "authorize"


@dataclass(frozen=True)
class Lifetimes:
    """[Call_Cleanup], in seconds, and what each lifetime is made of."""

    radius_retransmits: int = 5
    radius_timeout: int = 3
    alive_interval: int = 60
    incoming_session_lifetime: int = 10
    default_lifetime: int = 120

    @property
    def retransmit_window(self) -> int:
        """How late the gateway's last retransmit of a packet can arrive."""
        return self.radius_retransmits * self.radius_timeout

    @property
    def after_credit_time(self) -> int:
        """An authorized call lives its credit time plus this: it cannot
        last longer than it was granted, its Stop may still be on its way."""
        return self.default_lifetime + self.retransmit_window

    @property
    def started(self) -> int:
        """A Start with nothing better known (no authorization to inherit from)."""
        return self.default_lifetime + self.retransmit_window

    @property
    def alive(self) -> int:
        """After a keep-alive: until the next one is overdue."""
        return self.alive_interval + self.retransmit_window

    def ended_memory(self, incoming_leg: bool) -> int:
        """How long an ended call is remembered. After the incoming leg's
        Stop the other legs' packets may still come for
        ``Incoming_Session_Lifetime``; after that, retransmits only."""
        extra = self.incoming_session_lifetime if incoming_leg else 0
        return self.retransmit_window + extra

    def sweep_speedup(self, max_credit_time: int) -> float:
        """How much faster than the elapsed time the expiry sweep's time may
        run after billing time jumped forward (``billing/db_clock.py``
        SweepCutoff): 0.1 % (more than clocks drift), less where a call of
        the longest credit time would lose more than half of what it lives
        past its credit time."""
        margin = self.after_credit_time
        return min(0.001, margin / (2 * (max_credit_time + margin)))

    @property
    def sweep_interval(self) -> float:
        """How often expired calls are looked for: often enough that a call
        outlives its lifetime by a quarter of it at most, never more than
        once a second nor less than once a minute."""
        shortest = min(self.default_lifetime, self.alive_interval)
        return float(max(1, min(60, shortest // 4)))


def admit_starts(conn: Connection, starts: Sequence[dict[str, Any]], ended: set[str],
                 now: dt.datetime) -> list[dict[str, Any]]:
    """The Start rows to insert (see the module docstring). A started leg
    inherits the authorization's expiry when that is later: the call may
    last its whole credit time without keep-alives."""
    keys = sorted({r["conf_id"] for r in starts})
    gone = set(conn.execute(select(m.EndedCall.conf_id).where(
        m.EndedCall.conf_id.in_(keys), m.EndedCall.forget_at >= now)).scalars()) | \
        (ended & set(keys))
    have: dict[tuple[str, str], dt.datetime] = {
        (r.conf_id, r.leg): r.expires_at for r in conn.execute(
            select(m.ActiveCall.conf_id, m.ActiveCall.leg, m.ActiveCall.expires_at)
            .where(m.ActiveCall.conf_id.in_(keys)))}
    out: list[dict[str, Any]] = []
    for row in starts:
        key, leg = row["conf_id"], row["leg"]
        if key in gone:
            log.warning("call %s: Start (%s leg) for a call already ended (late or "
                        "re-ordered packet): ignored", key, leg)
            continue
        if (key, leg) in have:
            log.info("call %s: duplicate Start (%s leg): ignored", key, leg)
            continue
        auth = have.get((key, AUTHORIZE))
        if auth is None:
            log.warning("call %s: Start (%s leg) without a prior authorization: listed, "
                        "holds no funds and no call slot", key, leg)
        elif auth > row["expires_at"]:
            row = dict(row, expires_at=auth)
        have[(key, leg)] = row["expires_at"]
        out.append(row)
    return out


def keep_alive(conn: Connection, alive_until: Mapping[str, dt.datetime],
               now: dt.datetime) -> None:
    """Interim-Updates: every row of each call lives at least until its time."""
    by_time: dict[dt.datetime, list[str]] = {}
    for key, until in alive_until.items():
        by_time.setdefault(until, []).append(key)
    c = m.ActiveCall
    for until, keys in by_time.items():
        conn.execute(update(c).where(c.conf_id.in_(sorted(keys))).values(
            updated_at=now, expires_at=case((c.expires_at < until, until),
                                            else_=c.expires_at)))


# ------------------------------------------------------------------ listing
@dataclass
class CallInProgress:
    call_id: str  # the call key: h323-incoming-conf-id, else h323-conf-id
    account: str = ""
    customer: str = ""
    node: str = ""
    node_ip: str = ""
    cli: str = ""
    cld: str = ""
    session_id: str = ""
    user_name: str = ""
    conf_id: str = ""  # h323-conf-id of the leg a node reported (a Start's), whole
    incoming_conf_id: str = ""  # the call's incoming conf id, whole
    legs: list[str] = field(default_factory=list)
    started_at: dt.datetime | None = None  # the Start, else the authorization
    reserved: Decimal = Decimal(0)
    credit_time: int | None = None
    expires_at: dt.datetime | None = None

    @property
    def authorized(self) -> bool:
        return AUTHORIZE in self.legs

    @property
    def answered(self) -> bool:
        return any(leg != AUTHORIZE for leg in self.legs)

    def duration(self, now: dt.datetime) -> int:
        if self.started_at is None:
            return 0
        return max(0, int((now - self.started_at).total_seconds()))

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        return {"call_id": self.call_id, "account": self.account, "customer": self.customer,
                "node": self.node, "node_ip": self.node_ip, "cli": self.cli, "cld": self.cld,
                "session_id": self.session_id, "h323_conf_id": self.conf_id,
                "legs": self.legs, "authorized": self.authorized, "answered": self.answered,
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "duration": self.duration(now), "reserved": str(self.reserved),
                "credit_time": self.credit_time,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


def _query() -> Any:
    c, a, cu, n = m.ActiveCall, m.Account, m.Customer, m.Node
    return (select(c.conf_id, c.leg, c.node_ip, c.cli, c.cld, c.reserved, c.started_at,
                   c.expires_at, c.credit_time, c.session_id, c.user_name,
                   c.leg_conf_id.label("conf"), c.incoming_conf_id.label("incoming"),
                   a.account_id, cu.name.label("customer"), n.name.label("node"))
            .outerjoin(a, a.id == c.account_id)
            .outerjoin(cu, cu.id == a.customer_id)
            .outerjoin(n, n.nas_ip == c.node_ip)
            .where(c.leg != FUNDS_LOCK)
            .order_by(c.started_at, c.conf_id, c.leg))


def _merge(rows: Iterable[Any]) -> list[CallInProgress]:
    calls: dict[str, CallInProgress] = {}
    started: dict[str, dt.datetime] = {}
    authorized_at: dict[str, dt.datetime] = {}
    for r in rows:
        call = calls.setdefault(r.conf_id, CallInProgress(r.conf_id))
        if r.leg in call.legs:  # two nodes with one nas_ip: the row came twice
            continue
        call.legs.append(r.leg)
        call.reserved += Decimal(r.reserved or 0)
        for name, attr in (("account_id", "account"), ("customer", "customer"),
                           ("node", "node"), ("node_ip", "node_ip"), ("cli", "cli"),
                           ("cld", "cld"), ("session_id", "session_id"),
                           ("user_name", "user_name"), ("conf", "conf_id"),
                           ("incoming", "incoming_conf_id")):
            value = getattr(r, name) or ""
            if value and (not getattr(call, attr) or r.leg != AUTHORIZE):
                setattr(call, attr, value)  # a Start says it as the node does
        if r.leg == AUTHORIZE:
            call.credit_time = r.credit_time
            authorized_at[r.conf_id] = r.started_at
        elif r.conf_id not in started or r.started_at < started[r.conf_id]:
            started[r.conf_id] = r.started_at  # the first Start: when the call was set up
        call.started_at = started.get(r.conf_id) or authorized_at.get(r.conf_id)
        if call.expires_at is None or r.expires_at > call.expires_at:
            call.expires_at = r.expires_at
    return list(calls.values())


def list_calls(conn: Connection, customer: str = "", account: str = "",
               node: str = "") -> list[CallInProgress]:
    """Calls in progress (funds locks are not calls), oldest first."""
    q = _query()
    if customer:
        q = q.where(m.Customer.name == customer)
    if account:
        q = q.where(m.Account.account_id == account)
    if node:
        q = q.where((m.Node.name == node) | (m.ActiveCall.node_ip == node))
    return _merge(conn.execute(q))


def find_call(conn: Connection, call_id: str) -> CallInProgress | None:
    rows = list(conn.execute(_query().where(m.ActiveCall.conf_id == call_id[:128])))
    return _merge(rows)[0] if rows else None


@dataclass(frozen=True)
class CustomerLoad:
    customer: str
    calls: int
    max_calls: int | None


def customer_loads(conn: Connection) -> list[CustomerLoad]:
    """Each customer's calls being authorized or in progress against its
    limit (the running count the reservations keep)."""
    cu = m.Customer
    return [CustomerLoad(r.name, int(r.calls or 0), r.max_calls)
            for r in conn.execute(select(cu.name, cu.calls, cu.max_calls).order_by(cu.name))]

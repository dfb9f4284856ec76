"""Admin balance adjustments (``vigil account adjust``) and an account's history.

An adjustment changes what an account may spend: a positive amount is a
top-up, a negative one a charge. The balance column means different things by
billing model (the store's rule): a *debit* account's balance is its money
(a top-up adds to it), a *credit* account's balance is what it owes (a
top-up, i.e. a payment, takes from it, and from its customer's balance as a
call would add to both). The new balance and the audit row (who, when, why,
balance before and after) are written in one transaction, with the account
row locked, so a crash leaves both or neither, and two admins adjusting at
once both count. The running engine adds its charges as ``balance + delta``,
so an adjustment is never overwritten; it sees the new funds when its account
cache next refreshes (``[Radius] Account_Cache_sec``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from billing import models as m

MAX_ABS = Decimal("1000000")   # a typo guard: ten times any sane top-up
PLACES = Decimal("0.00001")    # the database keeps five decimal places


class AdjustmentError(ValueError):
    """The adjustment cannot be made (bad amount, no such account, empty reason)."""


@dataclass(frozen=True)
class Adjustment:
    account_id: str          # the account's external id (its User-Name)
    account_pk: int          # the internal key
    billing_model: str
    amount: Decimal          # change to the funds: + top-up, - charge
    balance_before: Decimal
    balance_after: Decimal
    reason: str
    actor: str
    at: dt.datetime
    adjustment_id: int | None = None   # None on a dry run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_amount(text: str) -> Decimal:
    """``"10"``, ``"+10.50"``, ``"-3.2"`` -> Decimal; refuses zero, NaN, more than 5 places."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AdjustmentError(f"amount {text!r} is not a number (use 10, +10.50 or -3.20)"
                              ) from None
    if not value.is_finite() or value == 0:
        raise AdjustmentError(f"amount {text!r} must be a non-zero number")
    if value != value.quantize(PLACES):
        raise AdjustmentError(f"amount {text!r} has more than 5 decimal places")
    if abs(value) > MAX_ABS:
        raise AdjustmentError(f"amount {text!r} is larger than {MAX_ABS} (a typo?)")
    return value


def who() -> str:
    """The admin: the sudo caller if any, else the login name."""
    for name in (os.environ.get("SUDO_USER"), _login()):
        if name:
            return name[:64]
    return f"uid {os.getuid()}"


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def adjust(engine: Engine, account_id: str, amount: Decimal, reason: str, *,
           actor: str | None = None, dry_run: bool = False,
           now: dt.datetime | None = None) -> Adjustment:
    """Apply (or, with ``dry_run``, only work out) one adjustment."""
    reason = " ".join(reason.split())
    if not reason:
        raise AdjustmentError("--reason must say why (it is kept with the adjustment)")
    if len(reason) > 255:
        raise AdjustmentError(f"--reason is {len(reason)} characters; at most 255")
    actor = actor or who()
    at = now or m.utcnow()
    with engine.begin() as conn:
        row = _locked_account(conn, account_id)
        delta = amount if row.billing_model == "debit" else -amount
        before = Decimal(row.balance)
        after = before + delta
        adj = Adjustment(row.account_id, row.id, row.billing_model, amount, before, after,
                         reason, actor, at)
        if dry_run:
            conn.rollback()
            return adj
        conn.execute(update(m.Account).where(m.Account.id == row.id).values(
            balance=m.Account.balance + delta))
        if row.billing_model == "credit":
            conn.execute(update(m.Customer).where(m.Customer.id == row.customer_id).values(
                balance=m.Customer.balance + delta))
        # The update is additive, so a charge the engine committed since our read
        # (possible on SQLite, which has no row lock) is kept; the audit row
        # records the balance as it is now, around our change.
        after = Decimal(conn.execute(select(m.Account.balance).where(
            m.Account.id == row.id)).scalar_one())
        new_id = conn.execute(insert(m.AccountAdjustment).values(
            account_id=row.id, amount=amount, balance_before=after - delta,
            balance_after=after, reason=reason, actor=actor, created_at=at)).inserted_primary_key
    return Adjustment(adj.account_id, adj.account_pk, adj.billing_model, amount, after - delta,
                      after, reason, actor, at, int(new_id[0]) if new_id else None)


def _locked_account(conn: Connection, account_id: str) -> Any:
    q = select(m.Account.id, m.Account.account_id, m.Account.billing_model,
               m.Account.balance, m.Account.customer_id).where(
        m.Account.account_id == account_id)
    if conn.dialect.name != "sqlite":
        q = q.with_for_update()  # SQLite has no row locks; its UPDATE takes the file's
    row = conn.execute(q).first()
    if row is None:
        raise AdjustmentError(f"no account {account_id!r}")
    return row


def history(engine: Engine, account_id: str, limit: int = 50) -> list[dict[str, Any]] | None:
    """Calls and adjustments of an account, newest first; None if there is no such account.

    ``funds_change`` is what each did to the account's funds (a call's charge is
    negative), so an admin reads one column whatever the billing model.
    """
    with engine.connect() as conn:
        acct = conn.execute(select(m.Account.id, m.Account.billing_model).where(
            m.Account.account_id == account_id)).first()
        if acct is None:
            return None
        calls = conn.execute(
            select(m.AccountXDR.id, m.AccountXDR.created_at, m.AccountXDR.amount,
                   m.AccountXDR.cld, m.AccountXDR.charged_duration, m.AccountXDR.connect_time)
            .where(m.AccountXDR.account_id == acct.id)
            .order_by(m.AccountXDR.id.desc()).limit(limit)).all()
        adjs = conn.execute(
            select(m.AccountAdjustment.__table__).where(m.AccountAdjustment.account_id == acct.id)
            .order_by(m.AccountAdjustment.id.desc()).limit(limit)).all()
    rows: list[dict[str, Any]] = []
    for c in calls:
        rows.append({"at": c.created_at, "kind": "call", "funds_change": -Decimal(c.amount),
                     "detail": f"call to {c.cld}, {c.charged_duration} s charged",
                     "by": "engine", "xdr_id": c.id, "adjustment_id": None})
    for a in adjs:
        rows.append({"at": a.created_at, "kind": "top-up" if a.amount > 0 else "charge",
                     "funds_change": Decimal(a.amount), "detail": a.reason, "by": a.actor,
                     "balance_after": Decimal(a.balance_after), "xdr_id": None,
                     "adjustment_id": a.id})
    rows.sort(key=lambda r: r["at"], reverse=True)
    return rows[:limit]

"""Read-only views for `vigil account show`, `customer show`, `cdr list`.

Reports belong on the replica (the source insists: never on the master);
point these commands at it with ``-c`` and a config whose ``[Master] URL``
is the replica.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from billing import models as m
from billing.store import SqlStore


def account_report(engine: Engine, account_id: str) -> dict[str, Any] | None:
    store = SqlStore(engine)
    acct = store.find_account(account_id)
    if acct is None:
        return None
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.connect() as conn:
        calls = conn.execute(select(func.count()).select_from(m.ActiveCall).where(
            m.ActiveCall.account_id == acct.pk, m.ActiveCall.expires_at > now)).scalar_one()
        xdrs, spent = conn.execute(select(func.count(), func.coalesce(func.sum(
            m.AccountXDR.amount), 0)).where(m.AccountXDR.account_id == acct.pk)).one()
    return {
        "account_id": acct.account_id, "customer": acct.customer_name,
        "billing_model": acct.billing_model, "balance": acct.balance,
        "credit_limit": acct.credit_limit, "available_funds": store.available(acct, now),
        "currency": acct.currency, "blocked": acct.blocked,
        "activation_date": acct.activation_date, "expiration_date": acct.expiration_date,
        "preferred_lang": acct.preferred_lang, "redirect_number": acct.redirect_number,
        "has_password": bool(acct.voip_password), "calls_in_progress": calls,
        "xdrs": xdrs, "total_charged": spent,
    }


def customer_report(engine: Engine, name: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        c = conn.execute(select(m.Customer.__table__).where(m.Customer.name == name)).first()
        if c is None:
            return None
        accounts = conn.execute(select(m.Account.account_id, m.Account.billing_model,
                                       m.Account.balance).where(
            m.Account.customer_id == c.id).order_by(m.Account.account_id)).all()
    return {"name": c.name, "currency": c.currency, "balance": c.balance,
            "credit_limit": c.credit_limit, "blocked": c.blocked,
            "accounts": [{"account_id": a.account_id, "billing_model": a.billing_model,
                          "balance": a.balance} for a in accounts]}


def list_xdrs(engine: Engine, kind: str = "account", account: str | None = None,
              vendor: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest xDRs. Field names say what they hold: ``xdr_id``; for account
    xDRs ``account_id`` is the account's own id (its User-Name) and
    ``account_pk`` the internal key; for vendor xDRs ``vendor`` and ``vendor_pk``."""
    x = m.AccountXDR if kind == "account" else m.VendorXDR
    cols = [c for c in x.__table__.c if c.name not in ("id", "account_id", "vendor_id")]
    if kind == "account":
        q = select(m.AccountXDR.id.label("xdr_id"), m.Account.account_id.label("account_id"),
                   m.AccountXDR.account_id.label("account_pk"), *cols).join(
            m.Account, m.Account.id == m.AccountXDR.account_id)
        if account:
            q = q.where(m.Account.account_id == account)
        q = q.order_by(m.AccountXDR.id.desc())
    else:
        q = select(m.VendorXDR.id.label("xdr_id"), m.Vendor.name.label("vendor"),
                   m.VendorXDR.vendor_id.label("vendor_pk"), *cols).join(
            m.Vendor, m.Vendor.id == m.VendorXDR.vendor_id)
        if vendor:
            q = q.where(m.Vendor.name == vendor)
        q = q.order_by(m.VendorXDR.id.desc())
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.limit(max(1, limit)))]

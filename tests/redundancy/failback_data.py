"""A primary billing database and a delta full of stand-alone xDRs, for the
failback tests and bench (helpers under a unique module name)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from billing import models as m
from billing import schema
from redundancy.site import delta as d
from redundancy.site import primary_tables as p

NOW = dt.datetime(2026, 11, 30, 12, 0, 0)


def seed_primary(engine: Engine, accounts: int) -> None:
    schema.upgrade(engine)
    with engine.begin() as c:
        c.execute(insert(m.Customer), [dict(id=1, name="ABC", currency="USD",
                                            balance=Decimal(0), credit_limit=None)])
        c.execute(insert(m.Product), [dict(id=1, name="P", currency="USD", breakage=0)])
        c.execute(insert(m.Vendor), [dict(id=1, name="V", currency="USD", balance=0)])
        c.execute(insert(m.Tariff), [dict(id=1, name="T", currency="USD")])
        c.execute(insert(m.Connection), [dict(id=1, vendor_id=1, name="C", remote_ip="1.2.3.4",
                                              tariff_id=1)])
        c.execute(insert(m.Account), [
            dict(id=i, account_id=f"acc{i}", customer_id=1, product_id=1,
                 billing_model="credit" if i % 2 else "debit",
                 balance=Decimal("50.00"), credit_limit=Decimal("1000.00"))
            for i in range(1, accounts + 1)])


def seed_delta(engine: Engine, xdrs: int, accounts: int, seed: int = 11) -> None:
    """``xdrs`` stand-alone xDRs: account charges, and every tenth a vendor's."""
    d.create(engine)
    rnd = random.Random(seed)
    rows = []
    for i in range(xdrs):
        acct = rnd.randint(1, accounts)
        amount = Decimal(rnd.randint(1, 500)) / 100
        credit = acct % 2 == 1
        vendor = i % 10 == 9
        rows.append(dict(
            kind="vendor" if vendor else "account", owner_pk=1 if vendor else acct,
            customer_pk=1 if credit and not vendor else None,
            billing_model="credit" if credit else "debit",
            adjustment=amount if (credit or vendor) else -amount,
            customer_adjustment=amount if credit and not vendor else 0,
            connection_pk=1 if vendor else None, session_key=f"k{i}|{'v' if vendor else 'a'}",
            stop_key=f"stop-{i // 2}",
            conf_id=f"conf-{i}", cli="12345", cld="12125551234", peer_ip="10.231.0.10",
            connect_time=NOW, disconnect_time=NOW, duration=60, charged_duration=60,
            amount=amount, tariff="T", rate_prefix="1", disconnect_cause="10",
            created_at=NOW))
    with engine.begin() as c:
        for i in range(0, len(rows), 5000):
            c.execute(insert(d.delta_xdrs), rows[i:i + 5000])


def expected(delta: Engine) -> tuple[dict[int, Decimal], Decimal, Decimal, int, int]:
    """Per account the balance change, the customer's and vendor's, counts."""
    x = d.delta_xdrs.c
    with delta.connect() as c:
        per = {r[0]: Decimal(r[1]) for r in c.execute(
            select(x.owner_pk, func.sum(x.adjustment)).where(x.kind == "account")
            .group_by(x.owner_pk))}
        cust = Decimal(c.execute(select(func.coalesce(func.sum(x.customer_adjustment), 0))
                                 ).scalar_one())
        vend = Decimal(c.execute(select(func.coalesce(func.sum(x.adjustment), 0)).where(
            x.kind == "vendor")).scalar_one())
        n_acct = c.execute(select(func.count()).where(x.kind == "account")).scalar_one()
        n_vend = c.execute(select(func.count()).where(x.kind == "vendor")).scalar_one()
    return per, cust, vend, n_acct, n_vend


def verify(primary: Engine, delta: Engine, site: str = "site-b",
           start_balance: Decimal = Decimal("50.00")) -> None:
    """None lost, none duplicated, each balance change equals its account's charges."""
    per, cust, vend, n_acct, n_vend = expected(delta)
    with primary.connect() as c:
        got_acct = c.execute(select(func.count(), func.count(func.distinct(
            m.AccountXDR.session_key)))).one()
        got_vend = c.execute(select(func.count()).select_from(m.VendorXDR)).scalar_one()
        assert tuple(got_acct) == (n_acct, n_acct), (got_acct, n_acct)
        assert got_vend == n_vend
        sums = {r[0]: Decimal(r[1]) for r in c.execute(
            select(m.AccountXDR.account_id, func.sum(m.AccountXDR.amount))
            .group_by(m.AccountXDR.account_id))}
        for pk, bal, model in c.execute(select(m.Account.id, m.Account.balance,
                                               m.Account.billing_model)):
            change = Decimal(bal) - start_balance
            assert change == per.get(pk, Decimal(0)), (pk, change, per.get(pk))
            charged = sums.get(pk, Decimal(0))
            assert change == (charged if model == "credit" else -charged), (pk, change, charged)
        assert Decimal(c.execute(select(m.Customer.balance)).scalar_one()) == cust
        assert Decimal(c.execute(select(m.Vendor.balance)).scalar_one()) == vend
        locks = c.execute(select(func.coalesce(func.sum(func.abs(p.site_funds_locks.c.amount)),
                                               0))).scalar_one()
        assert Decimal(locks) == 0
        top = c.execute(select(p.site_watermarks.c.transferred_upto).where(
            p.site_watermarks.c.site == site)).scalar_one()
        processed = c.execute(select(func.count()).select_from(m.ProcessedAccounting)
                              ).scalar_one()
    with delta.connect() as c:
        assert top == c.execute(select(func.max(d.delta_xdrs.c.seq))).scalar_one()
        stops = c.execute(select(func.count(func.distinct(d.delta_xdrs.c.stop_key)))
                          ).scalar_one()
    assert processed == stops  # every Stop charged in stand-alone is known to the primary


def failback_conf(base: Path, primary_url: str, delta_url: str, batch: int) -> Path:
    state = base / "state"
    state.mkdir(parents=True, exist_ok=True)
    conf = base / "vigil.conf"
    conf.write_text(f"[Site]\nRole=secondary\nName=site-b\nState_Dir={state}\nLog_Dir={base}\n"
                    f"[Standby]\nPrimary_URL={primary_url}\n"
                    f"[Delta]\nURL={delta_url}\nFailback_Batch={batch}\n"
                    f"[Email]\nSMTP_Port=9\nSMTP_Timeout_sec=1\n")
    conf.chmod(0o600)
    return conf

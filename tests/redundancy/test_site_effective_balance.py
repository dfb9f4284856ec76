"""The stand-alone store's effective balance stays exact at every step of a
failback (lock, each batch), so a site that goes stand-alone again half-way
neither double-counts nor forgets a charge. SQLite, in-process: the stand-by
is the primary's own file here (as if replication were instant)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine

from billing import schema
from billing.db import engine_for_url
from billing.provision import apply_document
from billing.store import XDR, AccountingOp, Reservation
from redundancy.site.failback import Failback, Report
from redundancy.site.standalone_store import StandaloneStore
from tests.redundancy.site_rig import EXAMPLE

NOW = dt.datetime(2026, 11, 30, 12, 0)


def stop(acct, key: str, amount: str) -> AccountingOp:
    x = XDR(table="account", owner_pk=acct.pk, connection_pk=None, session_key=key + "|a",
            conf_id=key, cli="12345", cld="12125551234", peer_ip="10.231.0.10",
            connect_time=NOW, disconnect_time=NOW, duration=60, charged_duration=60,
            amount=Decimal(amount), tariff="US retail", rate_prefix="1", disconnect_cause="10")
    return AccountingOp(session_key=key, kind="stop", call_key=key, account_pk=acct.pk,
                        billing_model=acct.billing_model, customer_pk=acct.customer_id,
                        xdrs=[x])


@pytest.fixture
def site(tmp_path) -> Iterator[tuple[Engine, Engine, StandaloneStore]]:
    """The primary's database with the example accounts, an empty delta, and the
    stand-alone store of site-b over them."""
    primary = engine_for_url(f"sqlite:///{tmp_path / 'primary.db'}")
    delta = engine_for_url(f"sqlite:///{tmp_path / 'delta.db'}")
    try:
        schema.upgrade(primary)
        apply_document(primary, EXAMPLE)
        store = StandaloneStore(primary, delta, "site-b")
        store.ensure_schema()
        yield primary, delta, store
    finally:
        primary.dispose()
        delta.dispose()


@pytest.mark.integration
def test_effective_balance_exact_through_failback(site):
    primary, delta, store = site

    def balance() -> Decimal:
        acct = store.find_account("12345")
        assert acct is not None
        return acct.balance

    acct = store.find_account("12345")
    assert acct is not None and acct.own_funds == Decimal("2.00")
    assert store.apply([stop(acct, "call-1", "1.20"), stop(acct, "call-2", "0.50")], NOW) == \
        [True, True]
    assert store.apply([stop(acct, "call-2", "0.50")], NOW) == [False]  # a repeat
    assert balance() == Decimal("99.70")
    # a reservation sees only what is left
    got = store.reserve(acct, "call-3", "10.231.0.10", "12345", "1212", NOW, 120,
                        lambda funds: Reservation(180, funds))
    assert got is not None and got.amount == Decimal("0.30")
    assert store.available(store.find_account("12345"), NOW) == 0

    fb = Failback(primary, delta, "site-b", batch=1, settle=0)
    fb.prepare()
    fb.lock_funds(Report())
    assert balance() == Decimal("99.70")  # primary pre-charged, lock subtracted, delta added
    assert fb.transfer_batch(Report()) == 1
    assert balance() == Decimal("99.70")  # one xDR moved: lock and delta both smaller
    assert fb.transfer_batch(Report()) == 1
    assert fb.transfer_batch(Report()) == 0
    assert balance() == Decimal("99.70")
    b = fb.backlog()
    assert (b.pending_xdrs, b.locked_total) == (0, Decimal(0))


@pytest.mark.integration
def test_reservation_carried_by_an_op(site):
    """The cluster store's contract (issue 13): the engine sends a reservation
    as an op; the stand-alone store decides it from the effective balance and
    the delta's reservations, and says granted or refused on the request."""
    from types import SimpleNamespace

    store = site[2]
    acct = store.find_account("12345")
    assert acct is not None
    store.apply([stop(acct, "call-1", "1.70")], NOW)

    def op(call: str) -> tuple[SimpleNamespace, AccountingOp]:
        req = SimpleNamespace(account_pk=acct.pk, lifetime=120, granted=None, refused=None,
                              decide=lambda funds: Reservation(60, funds) if funds > 0 else None)
        o = AccountingOp(session_key="", kind="reserve", call_key=call, leg="authorize",
                         account_pk=acct.pk)
        o.reserve = req  # type: ignore[attr-defined]  # the field issue 13 adds
        return req, o

    first, op1 = op("call-2")
    second, op2 = op("call-3")
    assert store.apply([op1, op2], NOW) == [True, False]
    assert first.granted.amount == Decimal("0.30") and first.refused is None
    assert second.granted is None and second.refused == "funds"

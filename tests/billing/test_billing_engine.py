"""Engine decisions against a real database (SQLite and MariaDB), in-process."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing import models as m
from billing.catalog import Catalog
from billing.engine import Engine, EngineSettings, ReturnCode
from billing.provision import apply_document, load_document
from billing.request import CallRequest
from billing.store import SqlStore

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_document(ROOT / "etc" / "demo" / "provision.yaml")


def make_engine(db, doc=DEMO, **settings) -> Engine:
    apply_document(db, doc)
    cat = Catalog(db)
    cat.load()
    return Engine(SqlStore(db), cat, EngineSettings(**settings))


def authz(account="193.100.201.1", conf="c1", cld="441259322891834", **kw) -> CallRequest:
    req = CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="NextoneUserA",
                      password="x", called=cld, calling=account, conf_id=conf,
                      ivr_out=[f"PortaBilling_UserName:{account}",
                               "PortaBilling_Ignore_Password:YES"])
    for k, v in kw.items():
        setattr(req, k, v)
    return req


def stop(account="193.100.201.1", conf="o1", incoming="c1", seconds="180",
         remote="65.218.170.184", cld="59322891834", origin="originate") -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", called=cld,
                       calling=account, conf_id=conf, incoming_conf_id=incoming,
                       call_origin=origin, remote_address=remote, status_type="Stop",
                       session_id=conf, session_time=seconds,
                       ivr_out=[f"PortaBilling_UserName:{account}"])


def account(db, account_id="193.100.201.1"):
    with db.connect() as c:
        return c.execute(select(m.Account.__table__).where(
            m.Account.account_id == account_id)).one()


def apply(engine: Engine, req: CallRequest) -> bool:
    op = engine.accounting_op(req)
    return engine.store.apply([op], engine.clock())[0]


def test_concurrent_calls_never_spend_the_same_money(db):
    eng = make_engine(db, fraud_active=False)
    first = eng.authorize(authz(conf="call-1"))
    assert first.accept and ("h323-credit-time", "180") in first.attributes
    # 0.87 of 1.02 is held by the first call: the second cannot buy a minute at 0.29
    second = eng.authorize(authz(conf="call-2"))
    assert not second.accept and second.code == ReturnCode.INSUFFICIENT_FUNDS
    # re-authorizing the same call does not count its own reservation twice
    again = eng.authorize(authz(conf="call-1"))
    assert again.accept and ("h323-credit-time", "180") in again.attributes
    # once the first call ends, its unspent reservation is free again
    assert apply(eng, stop(conf="o1", incoming="call-1", seconds="60"))
    third = eng.authorize(authz(conf="call-3"))
    assert third.accept  # 1.02 - 0.19 = 0.83 left: two minutes at 0.29
    assert ("h323-credit-time", "120") in third.attributes


def test_simultaneous_login_of_a_debit_account_is_refused(db):
    eng = make_engine(db)
    assert eng.authenticate(authz(conf="A", called="")).accept
    second = eng.authenticate(authz(conf="B", called=""))
    assert not second.accept and second.code == ReturnCode.ACCOUNT_IN_USE
    assert eng.authenticate(authz(conf="A", called="")).accept  # same session is fine


def test_test_mode_allows_but_reports(db):
    seen = []
    eng = make_engine(db, fraud_test_mode=True)
    eng.on_fraud = seen.append
    assert eng.authenticate(authz(conf="A", called="")).accept
    assert eng.authenticate(authz(conf="B", called="")).accept
    assert seen and "already logged in" in seen[0]


def test_stop_charges_account_and_vendor_once(db):
    eng = make_engine(db)
    assert apply(eng, stop())
    assert not apply(eng, stop())  # duplicate
    assert account(db).balance == Decimal("0.45")
    with db.connect() as c:
        assert c.execute(select(m.Vendor.balance)).scalar_one() == Decimal("0.27")
        assert c.execute(select(func.count()).select_from(m.AccountXDR)).scalar_one() == 1


def test_credit_account_balance_goes_up_with_customer(db):
    eng = make_engine(db)
    assert apply(eng, stop(account="4202111222", seconds="60", cld="420602123"))
    acct = account(db, "4202111222")
    assert acct.balance == Decimal("0.09")  # 60 x 1 s at 0.09/min
    with db.connect() as c:
        assert c.execute(select(m.Customer.balance).where(
            m.Customer.name == "SmartNET")).scalar_one() == Decimal("0.09")


def test_vendor_matched_by_prefix_then_any(db):
    doc = copy.deepcopy(DEMO)
    doc["vendors"] += [{"name": "PrefixCo"}, {"name": "AnyCo"}]
    doc["connections"] += [
        {"name": "pfx", "vendor": "PrefixCo", "remote_ip": "PREFIX:12345#", "tariff": "V BTS",
         "translation_rule": "s/^12345#//"},
        {"name": "any", "vendor": "AnyCo", "remote_ip": "ANY", "tariff": "V BTS"}]
    eng = make_engine(db, doc)
    assert apply(eng, stop(conf="p1", remote="10.1.1.1", cld="12345#42011111"))
    assert apply(eng, stop(conf="p2", remote="10.1.1.2", cld="42011111"))
    assert apply(eng, stop(conf="p3", remote="164.4.89.20", cld="42011111"))  # our own node
    with db.connect() as c:
        rows = c.execute(select(m.Vendor.name, m.VendorXDR.cld, m.VendorXDR.amount).join(
            m.Vendor, m.Vendor.id == m.VendorXDR.vendor_id).order_by(m.VendorXDR.id)).all()
    assert [(r[0], r[1]) for r in rows] == [("PrefixCo", "42011111"), ("AnyCo", "42011111")]


@pytest.mark.parametrize("seconds,why", [("-5", "negative duration"),
                                         ("99999999", "absurd duration"),
                                         ("ten", "is not a number")])
def test_unusable_stop_is_quarantined_not_lost_nor_charged(db, seconds, why):
    eng = make_engine(db)
    op = eng.accounting_op(stop(seconds=seconds))
    assert op.kind == "quarantine" and why in op.quarantine_reason
    assert eng.store.apply([op], eng.clock()) == [True]
    assert eng.store.apply([op], eng.clock()) == [False]
    assert account(db).balance == Decimal("1.02")
    with db.connect() as c:
        q = c.execute(select(m.QuarantinedAccounting.reason)).scalars().all()
    assert len(q) == 1 and why in q[0]


def test_start_and_stop_track_calls_in_progress(db):
    eng = make_engine(db)
    start = stop()
    start.status_type = "Start"
    apply(eng, start)
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ActiveCall)).scalar_one() == 1
    apply(eng, stop())
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ActiveCall)).scalar_one() == 0


def test_account_state_refusals(db):
    doc = copy.deepcopy(DEMO)
    base = doc["accounts"][0]
    doc["accounts"] += [
        dict(base, account_id="blocked", blocked=True),
        dict(base, account_id="expired", expiration_date="2001-01-01"),
        dict(base, account_id="future", activation_date="2999-01-01"),
        dict(base, account_id="broke", balance="0"),
        dict(base, account_id="redirect", redirect_number="18005551212"),
    ]
    eng = make_engine(db, doc)
    codes = {a: eng.authenticate(authz(account=a, conf=a, called="")).code
             for a in ("blocked", "expired", "future", "broke", "redirect")}
    assert codes == {"blocked": ReturnCode.USER_DENIED, "expired": ReturnCode.CARD_EXPIRED,
                     "future": ReturnCode.USER_DENIED, "broke": ReturnCode.ZERO_BALANCE,
                     "redirect": ReturnCode.REDIRECT_TO_CUSTOMER_SERVICE}
    redirect = eng.authenticate(authz(account="redirect", conf="redirect", called=""))
    assert redirect.accept and ("h323-redirect-number", "18005551212") in redirect.attributes


def test_self_test_never_reads_the_database(db):
    eng = make_engine(db)
    db.dispose()
    eng.store = None  # type: ignore[assignment]  # any store access would now fail
    req = CallRequest(source_ip="127.0.0.1", nas_ip="127.0.0.1", user_name="127.0.0.1",
                      password="cisco")
    assert eng.authenticate(req).accept
    assert eng.accounting_op(CallRequest(source_ip="127.0.0.1", nas_ip="127.0.0.1",
                                         user_name="127.0.0.1", status_type="Stop")
                             ).kind == "noop"


def test_cisco_style_reply_prefix(db):
    eng = make_engine(db, cisco_vsa_prefix=True)
    d = eng.authorize(authz())
    assert ("h323-credit-time", "h323-credit-time=180") in d.attributes


def test_gateway_clock_far_off_uses_our_time(db):
    eng = make_engine(db)
    req = stop()
    req.connect_time = "00:02:05.111 EDT Mon Sep 04 2006"
    req.disconnect_time = "00:05:05.152 EDT Mon Sep 04 2006"
    apply(eng, req)
    with db.connect() as c:
        t = c.execute(select(m.AccountXDR.disconnect_time)).scalar_one()
    assert abs(t - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=5)

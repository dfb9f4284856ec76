"""Calls in progress in-process (SQLite and MariaDB): lifetimes, bad input,
the listing, and the Disconnect-Request's attributes."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from billing import disconnect
from billing import models as m
from billing.cached_store import CachedStore
from billing.calls import CallInProgress, Lifetimes, customer_loads, find_call, list_calls
from billing.catalog import Catalog
from billing.engine import Engine, EngineSettings, ReturnCode
from billing.provision import ProvisionError, apply_document, load_document
from billing.request import CallRequest
from billing.store import SqlStore, reserved_sums_agree

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_document(ROOT / "etc" / "demo" / "provision.yaml")
ACCOUNT = "193.100.201.1"
T0 = dt.datetime(2026, 11, 30, 12, 0, 0)
# Short lifetimes: window 2 s, keep-alives every 10 s, calls 30 s by default.
SHORT = dict(radius_retransmits=2, radius_timeout=1, alive_interval=10,
             incoming_session_lifetime=5, default_lifetime=30, fraud_active=False,
             max_credit_time=60)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def setup(db):  # type: ignore[no-untyped-def]
    apply_document(db, DEMO)
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == ACCOUNT).values(
            balance=Decimal("10")))
    cat = Catalog(db)
    cat.load()
    clock = Clock()
    eng = Engine(CachedStore(SqlStore(db)), cat, EngineSettings(**SHORT), clock=clock)
    return eng, clock, db


def authz(conf: str) -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="NextoneUserA",
                       called="441259322891834", calling=ACCOUNT, conf_id=conf,
                       ivr_out=[f"PortaBilling_UserName:{ACCOUNT}",
                                "PortaBilling_Ignore_Password:YES"])


def acct(conf: str, status: str, seconds: int = 0, origin: str = "originate") -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="NextoneUserA",
                       called="59322891834", calling=ACCOUNT, conf_id=conf,
                       call_origin=origin, remote_address="65.218.170.184",
                       status_type=status, session_id=f"s-{conf}",
                       session_time=str(seconds) if status == "Stop" else "",
                       ivr_out=[f"PortaBilling_UserName:{ACCOUNT}"])


def send(eng: Engine, req: CallRequest) -> bool:
    return eng.store.apply([eng.accounting_op(req)], eng.clock())[0]


def listed(db) -> dict[str, CallInProgress]:  # type: ignore[no-untyped-def]
    with db.connect() as c:
        return {call.call_id: call for call in list_calls(c)}


def expire(eng: Engine) -> int:
    return eng.store.expire_calls(eng.clock())


def slots(db) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with db.connect() as c:
        a = c.execute(select(m.Account.calls).where(m.Account.account_id == ACCOUNT)).scalar()
        cu = c.execute(select(m.Customer.calls).join(m.Account).where(
            m.Account.account_id == ACCOUNT)).scalar()
        assert list(reserved_sums_agree(c)) == []
    return int(a or 0), int(cu or 0)


# ---------------------------------------------------------------- lifetimes
def test_lifetimes_follow_call_cleanup():
    lt = Lifetimes(radius_retransmits=5, radius_timeout=3, alive_interval=60,
                   incoming_session_lifetime=10, default_lifetime=120)
    assert lt.retransmit_window == 15
    assert lt.after_credit_time == 135 and lt.started == 135 and lt.alive == 75
    assert lt.ended_memory(incoming_leg=False) == 15
    assert lt.ended_memory(incoming_leg=True) == 25
    assert lt.sweep_interval == 15
    assert Lifetimes(1, 1, 2, 0, 2).sweep_interval == 1  # never more than once a second
    assert Lifetimes(5, 3, 3600, 10, 3600).sweep_interval == 60  # at least once a minute


# ------------------------------------------------------ the call's lifecycle
def test_authorization_start_stop_and_the_listing(setup):
    eng, clock, db = setup
    assert eng.authorize(authz("c1")).accept
    call = listed(db)["c1"]
    assert call.authorized and not call.answered
    assert call.credit_time == 60 and call.reserved > 0
    assert call.account == ACCOUNT and call.customer == "testgatewayprepaid"
    assert call.node == "NexTone" and call.node_ip == "164.4.89.20"
    clock.advance(5)
    assert send(eng, acct("c1", "Start"))
    clock.advance(7)
    call = listed(db)["c1"]
    assert call.answered and call.legs == ["authorize", "originate"]
    assert call.duration(clock()) == 7  # from the Start, not the authorization
    assert call.session_id == "s-c1" and call.cld == "59322891834"
    # the Start inherits the authorization's expiry (credit time + lifetime)
    assert call.expires_at == T0 + dt.timedelta(seconds=60 + 32)
    assert send(eng, acct("c1", "Stop", 7))
    assert "c1" not in listed(db)
    assert slots(db) == (0, 0)


def test_late_retransmitted_start_never_resurrects_an_ended_call(setup, caplog):
    eng, clock, db = setup
    assert eng.authorize(authz("c2")).accept
    assert send(eng, acct("c2", "Start"))
    assert send(eng, acct("c2", "Stop", 3))
    clock.advance(1.5)  # within the window of 2 x 1 s
    with caplog.at_level(logging.WARNING, "billing.calls"):
        send(eng, acct("c2", "Start"))
    assert "c2" not in listed(db)
    assert "Start (originate leg) for a call already ended" in caplog.text
    assert slots(db) == (0, 0)


def test_stop_before_its_start(setup, caplog):
    """UDP re-orders: the Stop charges and ends the call; the Start that
    follows is ignored, and the call is never listed."""
    eng, clock, db = setup
    assert send(eng, acct("c3", "Stop", 180))
    with db.connect() as c:
        assert c.execute(select(m.AccountXDR.amount)).scalar() == Decimal("0.57")
    clock.advance(0.5)
    with caplog.at_level(logging.WARNING, "billing.calls"):
        send(eng, acct("c3", "Start"))
    assert "c3" not in listed(db)
    assert "call c3: Start (originate leg) for a call already ended" in caplog.text


def test_ended_calls_are_forgotten_after_the_last_retransmit(setup):
    eng, clock, db = setup
    send(eng, acct("c4", "Stop", 1))
    clock.advance(3)  # past the 2 s window (originate leg)
    expire(eng)
    with db.connect() as c:
        assert c.execute(select(m.EndedCall.conf_id)).first() is None
    # a Start this late is a new call as far as anyone can tell
    send(eng, acct("c4", "Start"))
    assert "c4" in listed(db)


def test_incoming_leg_stop_is_remembered_longer(setup):
    eng, clock, db = setup
    send(eng, acct("c5", "Stop", 1, origin="answer"))
    clock.advance(6)  # past the window, within window + Incoming_Session_Lifetime (7 s)
    send(eng, acct("c5", "Start"))
    assert "c5" not in listed(db)


def test_duplicate_starts_list_one_call(setup, caplog):
    eng, clock, db = setup
    assert eng.authorize(authz("c6")).accept
    with caplog.at_level(logging.INFO, "billing.calls"):
        for _ in range(3):
            assert send(eng, acct("c6", "Start"))
    assert listed(db)["c6"].legs == ["authorize", "originate"]
    assert caplog.text.count("call c6: duplicate Start (originate leg): ignored") == 2
    assert slots(db) == (1, 1)


def test_start_without_authorization_is_listed_and_holds_nothing(setup, caplog):
    eng, clock, db = setup
    with caplog.at_level(logging.WARNING, "billing.calls"):
        assert send(eng, acct("c7", "Start"))
    call = listed(db)["c7"]
    assert not call.authorized and call.reserved == 0 and call.credit_time is None
    assert "call c7: Start (originate leg) without a prior authorization" in caplog.text
    assert slots(db) == (0, 0)
    assert call.expires_at == T0 + dt.timedelta(seconds=32)  # Default_Lifetime + window


def test_lost_stop_leaves_no_ghost(setup, caplog):
    eng, clock, db = setup
    assert eng.authorize(authz("c8")).accept
    send(eng, acct("c8", "Start"))
    send(eng, acct("c9", "Start"))  # unauthorized, Default_Lifetime
    clock.advance(33)
    expire(eng)
    assert set(listed(db)) == {"c8"}  # its credit time still runs
    clock.advance(60)
    with caplog.at_level(logging.WARNING, "billing.store"):
        expire(eng)
    assert listed(db) == {}
    assert "call c8 forgotten: no Stop within its lifetime" in caplog.text
    assert slots(db) == (0, 0)


def test_keep_alives_keep_a_call_up(setup):
    eng, clock, db = setup
    send(eng, acct("k1", "Start"))  # no authorization: 32 s unless kept alive
    for _ in range(5):
        clock.advance(10)
        send(eng, acct("k1", "Interim-Update"))
        expire(eng)
    assert "k1" in listed(db)  # 50 s on
    clock.advance(13)  # a keep-alive overdue: Alive_Interval + window = 12 s
    expire(eng)
    assert "k1" not in listed(db)


def test_limit_lowered_below_the_calls_up(setup, caplog):
    eng, clock, db = setup
    for conf in ("l1", "l2", "l3"):
        assert eng.authorize(authz(conf)).accept
    with db.begin() as c:
        c.execute(update(m.Customer).where(m.Customer.name == "testgatewayprepaid")
                  .values(max_calls=2))
    eng.store.reload()
    with caplog.at_level(logging.INFO, "billing.engine"):
        d = eng.authorize(authz("l4"))
    assert not d.accept and d.code == ReturnCode.ACCOUNT_IN_USE
    assert "concurrent-call limit" in caplog.text
    assert set(listed(db)) == {"l1", "l2", "l3"}  # none ended
    with db.connect() as c:
        load = {x.customer: x for x in customer_loads(c)}["testgatewayprepaid"]
    assert (load.calls, load.max_calls) == (3, 2)
    send(eng, acct("l1", "Stop", 5))
    assert not eng.authorize(authz("l5")).accept  # 2 up, limit 2
    send(eng, acct("l2", "Stop", 5))
    assert eng.authorize(authz("l6")).accept


def test_listing_filters(setup):
    eng, clock, db = setup
    assert eng.authorize(authz("f1")).accept
    with db.connect() as c:
        assert [x.call_id for x in list_calls(c, customer="testgatewayprepaid")] == ["f1"]
        assert list_calls(c, customer="nobody") == []
        assert [x.call_id for x in list_calls(c, account=ACCOUNT)] == ["f1"]
        assert [x.call_id for x in list_calls(c, node="164.4.89.20")] == ["f1"]
        assert list_calls(c, node="10.0.0.1") == []
        assert find_call(c, "f1") is not None and find_call(c, "nope") is None


# ----------------------------------------------------- provisioning the port
def test_disconnect_port_is_provisioned_and_checked(db):
    doc = {**DEMO, "nodes": [dict(DEMO["nodes"][0], disconnect_port=13799)]}
    apply_document(db, doc)
    with db.connect() as c:
        assert c.execute(select(m.Node.disconnect_port)).scalar() == 13799
    for bad in (0, 70000, "x", True):
        with pytest.raises(ProvisionError, match="disconnect_port"):
            apply_document(db, {**DEMO, "nodes": [dict(DEMO["nodes"][0],
                                                       disconnect_port=bad)]})
    apply_document(db, DEMO)  # absent: the RFC's port
    with db.connect() as c:
        assert c.execute(select(m.Node.disconnect_port)).scalar() == 3799


# ------------------------------------------- the Disconnect-Request (pure)
def test_disconnect_request_names_the_session():
    call = CallInProgress("4985ee3f@192.168.0.31", node_ip="164.4.89.20", cli="193.100.201.1",
                          cld="59322891834", session_id="56eb", user_name="NextoneUserA",
                          legs=["authorize", "originate"])
    attrs = disconnect.request_attributes(call, dt.datetime(2026, 11, 30, 12, 0, 0))
    assert attrs == [
        ("Acct-Session-Id", "56eb"),
        ("h323-conf-id", "4985ee3f@192.168.0.31"),
        ("Cisco-AVPair", "h323-conf-id=4985ee3f@192.168.0.31"),
        ("User-Name", "NextoneUserA"),
        ("NAS-IP-Address", "164.4.89.20"),
        ("Calling-Station-Id", "193.100.201.1"),
        ("Called-Station-Id", "59322891834"),
        ("Event-Timestamp", 1796040000),
    ]
    # a Start of the outgoing leg: its own conf id, and the call's incoming one
    leg = CallInProgress("in@gw", conf_id="out@gw", incoming_conf_id="in@gw")
    attrs = disconnect.request_attributes(leg, dt.datetime(2026, 11, 30, 12, 0, 0))
    assert attrs[:4] == [("h323-conf-id", "out@gw"), ("Cisco-AVPair", "h323-conf-id=out@gw"),
                         ("h323-incoming-conf-id", "in@gw"),
                         ("Cisco-AVPair", "h323-incoming-conf-id=in@gw")]
    bare = disconnect.request_attributes(CallInProgress("x"), dt.datetime(1970, 1, 1, 0, 1))
    assert bare == [("h323-conf-id", "x"), ("Cisco-AVPair", "h323-conf-id=x"),
                    ("Event-Timestamp", 60)]


@pytest.mark.parametrize("code, text", [
    (503, "503 Session Context Not Found"), (504, "504 Session Context Not Removable"),
    (401, "401 Unsupported Attribute"), (201, "201 Residual Session Context Removed"),
    (999, "999 unknown Error-Cause"), (None, "no Error-Cause given")])
def test_error_causes_decoded(code, text):
    assert disconnect.describe_error_cause(code) == text


def test_outcomes_map_to_exit_codes():
    R = disconnect.Result
    assert [disconnect.Outcome(r).exit_code for r in R] == [0, 1, 3, 3]
    nak = disconnect.Outcome(R.NAK, error_cause=503)
    assert nak.text == "Disconnect-NAK: 503 Session Context Not Found"
    assert nak.as_dict()["error_cause_text"] == "503 Session Context Not Found"
    t = disconnect.Target("n", "127.0.0.1", 3799, "sekret")
    assert "sekret" not in repr(t)

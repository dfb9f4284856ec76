"""The production money path, in-process: CachedStore over SqlStore (what
`vigil radiusd` runs), the committer, with fake clocks; and the O(1)
authorization however many calls an account has open."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select, update

from billing import models as m
from billing.account_cache import AccountCache
from billing.cached_store import CachedStore
from billing.catalog import Catalog
from billing.committer import Committer
from billing.db import engine_for_url
from billing.engine import AuthorizationPlan, Engine, EngineSettings, ReturnCode
from billing.provision import apply_document, load_document
from billing.request import CallRequest
from billing.store import (
    LOCK_TRIES,
    AccountingOp,
    BillingModel,
    OpKind,
    SqlStore,
    reserved_sums_agree,
    signed_charge,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_document(ROOT / "etc" / "demo" / "provision.yaml")
NOW = dt.datetime(2026, 11, 30, 12, 0, 0)


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def engine_on(db, **settings) -> tuple[Engine, CachedStore, FakeClock]:
    apply_document(db, DEMO)
    cat = Catalog(db)
    cat.load()
    clock = FakeClock()
    store = CachedStore(SqlStore(db), cache=AccountCache(10.0, clock=clock))
    eng = Engine(store, cat, EngineSettings(**settings), clock=lambda: NOW)
    return eng, store, clock


def stop_request(conf: str, seconds: str, account: str = "193.100.201.1") -> CallRequest:
    """The originate leg's Stop of call ``conf`` after ``seconds``."""
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", called="59322891834",
                       calling=account, conf_id=conf, call_origin="originate",
                       remote_address="65.218.170.184", status_type="Stop", session_id=conf,
                       session_time=seconds, ivr_out=[f"PortaBilling_UserName:{account}"])


def authz(conf: str, account: str = "193.100.201.1") -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="x",
                       called="441259322891834", calling=account, conf_id=conf,
                       ivr_out=[f"PortaBilling_UserName:{account}",
                                "PortaBilling_Ignore_Password:YES"])


def credit_time(decision) -> int:  # type: ignore[no-untyped-def]
    return int(dict(decision.attributes).get("h323-credit-time", 0))


# ------------------------------------------------------------ the sign rule
def test_sign_rule_debit_down_credit_up_with_the_customer():
    assert signed_charge(BillingModel.DEBIT, Decimal("0.57")) == (Decimal("-0.57"), 0)
    assert signed_charge(BillingModel.CREDIT, Decimal("0.57")) == (Decimal("0.57"),
                                                                   Decimal("0.57"))


# ------------------------------------------------------------ cached store
def test_cache_proposes_the_database_grants(db):
    eng, store, _ = engine_on(db, fraud_active=False)
    assert credit_time(eng.authorize(authz("c1"))) == 180  # 0.87 of 1.02 held
    cached = store.accounts.get("193.100.201.1")
    assert cached is not None and cached.reserved == Decimal("0.87")  # re-read after commit
    # a charge behind the engine's back: the cache still shows 1.02
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(balance=Decimal("0.90")))
    second = eng.authorize(authz("c2"))
    assert not second.accept and second.code == ReturnCode.INSUFFICIENT_FUNDS
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []


def test_stale_cache_gets_a_shorter_grant_not_an_overdraft(db):
    eng, store, _ = engine_on(db, fraud_active=False)
    store.find_account("193.100.201.1")  # cached with 1.02
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(balance=Decimal("0.60")))
    # the proposal (3 min, 0.87) does not fit: decided again from the database
    assert credit_time(eng.authorize(authz("c1"))) == 120


def test_cached_accounts_expire_on_the_fake_clock(db):
    _, store, clock = engine_on(db)
    assert store.find_account("193.100.201.1") is not None
    assert store.in_memory("193.100.201.1")
    clock.t += 11
    assert not store.in_memory("193.100.201.1")


def test_stop_releases_exactly_its_reservation_once(db):
    eng, store, _ = engine_on(db, fraud_active=False)
    assert credit_time(eng.authorize(authz("c1"))) == 180
    stop = stop_request("c1", "60")
    op = eng.accounting_op(stop)
    assert store.apply([op, op], NOW) == [True, False]  # a duplicate in the same batch
    assert store.apply([op], NOW) == [False]
    acct = store.find_account("193.100.201.1")
    assert acct is not None and acct.reserved == 0 and acct.balance == Decimal("0.83")


def test_cached_login_moves_with_the_commit(db):
    """Simultaneous-login prevention on: the cache learns the login from the
    committed reservation and forgets it with the committed Stop, so the next
    call of the account is not refused from a stale holder until a refresh."""
    eng, store, _ = engine_on(db, fraud_active=True)
    assert credit_time(eng.authorize(authz("c1"))) == 180
    held = store.accounts.get("193.100.201.1")
    assert held is not None and held.login_call == "c1"
    assert eng.authenticate(authz("c2")).accept is False  # c1 holds the account
    stop = stop_request("c1", "60")
    assert store.apply([eng.accounting_op(stop)], NOW) == [True]
    free = store.accounts.get("193.100.201.1")
    assert free is not None and free.login_call == ""
    assert credit_time(eng.authorize(authz("c2"))) > 0


def test_funds_lock_is_a_reservation_without_a_call(db):
    eng, store, _ = engine_on(db, fraud_active=False)
    pk = store.find_account("193.100.201.1").pk  # type: ignore[union-attr]
    store.db.lock_funds("site:b:1", pk, Decimal("0.50"), NOW)
    store.refresh_accounts()
    assert credit_time(eng.authorize(authz("c1"))) == 60  # 0.52 left
    assert store.db.release_funds("site:b:1") == Decimal("0.50")
    assert store.db.release_funds("site:b:1") == 0  # once
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []


# -------------------------------------------------------------- committer
def test_committer_batches_and_drops_what_waited_too_long():
    clock = FakeClock()
    committed: list[list[int]] = []
    failed: list[list[int]] = []
    c: Committer[int] = Committer(committed.append, failed.append, max_batch=2,
                                  max_backlog=4, max_age=5.0, clock=clock)
    assert all(c.submit(i) for i in range(4))
    assert not c.submit(99)  # backlog full: refused, not hoarded
    assert c.run_once() and committed == [[0, 1]]
    clock.t += 6
    assert c.run_once()
    assert failed == [[2, 3]] and committed == [[0, 1]] and c.dropped == 3
    assert not c.run_once()


def test_committer_survives_a_commit_that_raises():
    failed: list[list[str]] = []

    def boom(batch: list[str]) -> None:
        raise RuntimeError("bug")

    c: Committer[str] = Committer(boom, failed.append)
    c.submit("a")
    assert c.run_once() and failed == [["a"]]


# ------------------------------------------------------------ O(1) reserve
def _statements(db):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(db, "before_cursor_execute", count)
    return seen, lambda: event.remove(db, "before_cursor_execute", count)


@pytest.mark.parametrize("open_calls", [0, 4000])
def test_authorization_work_does_not_grow_with_open_calls(db, open_calls):
    """A wholesale credit account with thousands of calls open: one
    authorization runs the same statements, none of which reads the calls.
    (Counted one by one: a MariaDB engine without multi-statements sends
    the committer's pipeline statement by statement, through the events.)"""
    db = engine_for_url(db.url, pool_size=2)
    eng, store, _ = engine_on(db)
    acct = store.find_account("4202111222")
    assert acct is not None
    with db.begin() as c:
        if open_calls:
            c.execute(insert(m.ActiveCall), [dict(
                conf_id=f"open-{i}", leg="authorize", account_id=acct.pk,
                customer_id=acct.customer_id, reserved=Decimal("0.01"), started_at=NOW,
                updated_at=NOW, expires_at=NOW + dt.timedelta(hours=1))
                for i in range(open_calls)])
        total = Decimal("0.01") * open_calls
        c.execute(update(m.Account).where(m.Account.id == acct.pk).values(reserved=total))
        c.execute(update(m.Customer).where(m.Customer.id == acct.customer_id)
                  .values(reserved=total))
    store.refresh_accounts()
    seen, stop = _statements(db)
    try:
        decision = eng.authorize(authz("new-call", account="4202111222"))
    finally:
        stop()
    assert decision.accept
    writes = [s for s in seen if not s.lstrip().upper().startswith(
        ("SELECT", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"))]
    # customer conditional, account conditional, the call's row (one round
    # trip on MariaDB: billing/sql_pipeline.py)
    assert len(writes) == 3, writes
    assert not any("sum(" in s.lower() for s in seen)
    reads_calls = [s for s in seen if s.lstrip().upper().startswith("SELECT")
                   and "active_calls" in s]
    # the only read of active_calls is by this call's own key (unique index)
    assert len(reads_calls) == 1 and "conf_id IN" in reads_calls[0]
    print(f"{open_calls} open calls: {len(seen)} statements")
    with db.connect() as c:
        assert c.execute(select(m.Account.reserved).where(m.Account.id == acct.pk)
                         ).scalar_one() > Decimal("0.01") * open_calls


def test_reserve_op_kinds_are_enums():
    op = AccountingOp(session_key="k", kind=OpKind.STOP)
    assert op.kind == "stop" and OpKind("quarantine") is OpKind.QUARANTINE


def test_one_batch_of_proposals_that_do_not_all_fit(db):
    """Three calls decided from the same cached funds, committed together:
    the all-at-once statement does not match, each is then granted or
    refused on its own, and the first keeps its whole proposal."""
    eng, store, _ = engine_on(db, fraud_active=False)
    plans = [eng.plan_authorization(authz(f"b{i}")) for i in range(3)]
    ops = [p.op for p in plans]  # type: ignore[union-attr]
    assert store.apply(ops, NOW) == [True, False, False]
    decisions = [p.finish() for p in plans]  # type: ignore[union-attr]
    assert credit_time(decisions[0]) == 180
    assert [d.code for d in decisions[1:]] == [ReturnCode.INSUFFICIENT_FUNDS] * 2
    acct = store.find_account("193.100.201.1")
    assert acct is not None and acct.reserved == Decimal("0.87")


def test_one_batch_of_proposals_that_fit_is_one_statement(db):
    db = engine_for_url(db.url, pool_size=2)  # counted one by one (see above)
    eng, store, _ = engine_on(db, fraud_active=False, max_credit_time=600)  # 2.90 each
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(balance=Decimal("10")))
    store.reload()
    plans = [eng.plan_authorization(authz(f"b{i}")) for i in range(3)]
    seen, stop = _statements(db)
    try:
        assert store.apply([p.op for p in plans], NOW) == [True] * 3  # type: ignore[union-attr]
    finally:
        stop()
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 2, updates  # one for the customer, one for the accounts
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []


# ----------------------------------------------------- concurrent-call limits
@pytest.mark.parametrize("together", [True, False])
def test_customer_call_limit_across_two_engines(db, together):
    """A customer allowed 2 calls: the third is refused whether the three
    arrive in one batch or one by one, on two engines; a Stop frees a slot."""
    eng, store, _ = engine_on(db, fraud_active=False, max_credit_time=60)
    with db.begin() as c:
        c.execute(update(m.Customer).where(m.Customer.name == "testgatewayprepaid")
                  .values(max_calls=2))
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(balance=Decimal("10")))
    store.reload()
    other = Engine(CachedStore(SqlStore(db)), eng.catalog, eng.settings, clock=lambda: NOW)
    plans = [e.plan_authorization(authz(f"l{i}")) for i, e in enumerate((eng, other, eng))]
    if together:
        assert store.apply([p.op for p in plans], NOW) == [True, True, False]  # type: ignore
    else:
        for p, e in zip(plans, (eng, other, eng), strict=True):
            e.store.apply([p.op], NOW)  # type: ignore[union-attr]
    decisions = [p.finish() for p in plans]  # type: ignore[union-attr]
    assert [d.accept for d in decisions] == [True, True, False]
    assert decisions[2].code == ReturnCode.ACCOUNT_IN_USE
    stop = stop_request("l0", "30")
    assert other.store.apply([other.accounting_op(stop)], NOW) == [True]
    assert other.authorize(authz("l3")).accept  # the Stop freed a slot
    with db.connect() as c:
        calls = c.execute(select(m.Customer.calls).where(
            m.Customer.name == "testgatewayprepaid")).scalar_one()
    assert calls == 2


def test_account_call_limit_and_provisioning(db):
    doc = {**DEMO, "accounts": [dict(DEMO["accounts"][0], max_calls=1, balance="10")]}
    apply_document(db, doc)
    eng, _, _ = engine_on(db, fraud_active=False, max_credit_time=60)
    apply_document(db, doc)  # engine_on applied the demo again: the limit back on
    eng.store.reload()
    assert eng.authorize(authz("one")).accept
    second = eng.authorize(authz("two"))
    assert not second.accept and second.code == ReturnCode.ACCOUNT_IN_USE


# ----------------------------------------------------------------- chores
def test_chores_run_on_their_own_schedule_and_survive_a_failure():
    from billing.chores import Chore, Housekeeper

    clock = FakeClock(0.0)
    ran: list[str] = []

    def broken() -> None:
        ran.append("refresh")
        raise RuntimeError("database gone")

    keeper = Housekeeper("t", [Chore("stats", 1.0, lambda: ran.append("stats")),
                               Chore("refresh", 0.5, broken)], clock=clock)
    assert keeper.run_due() == pytest.approx(0.5)
    assert ran == ["stats", "refresh"]
    clock.t = 0.5
    keeper.run_due()
    assert ran == ["stats", "refresh", "refresh"]  # the failure did not stop it
    clock.t = 1.0
    keeper.run_due()
    assert ran.count("stats") == 2 and ran.count("refresh") == 3


@pytest.mark.parametrize("conflicts", [1, LOCK_TRIES - 1, 10 ** 6])
def test_a_batch_that_loses_a_lock_conflict_runs_again_once_charged(db, monkeypatch, caplog,
                                                                    conflicts):
    """Another engine's commit won a lock conflict: InnoDB rolled this batch
    back whole (error 1213). The store runs it again; the Stop is charged
    once and answered. After every try lost, nothing is stored and nothing
    answered (the gateway retransmits), and the database is not called gone.
    The conflict is raised in the store's own batch after its statements ran
    (a real deadlock's victim cannot be chosen by a test)."""
    import pymysql
    from sqlalchemy.exc import OperationalError

    eng, store, _ = engine_on(db, fraud_active=False)
    assert credit_time(eng.authorize(authz("d1"))) == 180
    stop = stop_request("d1", "60")
    real = SqlStore._apply_batch
    lost = {"n": 0}

    def losing(self, conn, ops, now):  # type: ignore[no-untyped-def]
        out = real(self, conn, ops, now)
        if lost["n"] < conflicts:
            lost["n"] += 1
            raise OperationalError("COMMIT", None, pymysql.err.OperationalError(
                1213, "Deadlock found when trying to get lock; try restarting transaction"))
        return out

    monkeypatch.setattr(SqlStore, "_apply_batch", losing)
    op = eng.accounting_op(stop)
    with caplog.at_level("INFO", logger="billing.store"):
        result = store.db.apply([op], NOW)
    monkeypatch.undo()
    acct = store.db.find_account("193.100.201.1")
    assert acct is not None
    if conflicts < LOCK_TRIES:
        assert result == [True] and "lost a lock conflict" in caplog.text
        assert lost["n"] == conflicts
        assert acct.reserved == 0 and acct.balance == Decimal("0.83")  # charged once
        assert store.db.apply([op], NOW) == [False]  # and a retransmission is a duplicate
    else:  # every try of the batch, then of the record alone
        assert result == [None]  # not stored: no answer, the gateway sends it again
        assert lost["n"] == 2 * LOCK_TRIES
        assert acct.reserved == Decimal("0.87") and acct.balance == Decimal("1.02")
        assert store.db.apply([op], NOW) == [True]  # the retransmission is charged
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []


def test_the_login_hold_of_an_authentication_is_the_databases(db):
    """[Fraud_Detection]: a debit account authenticated on one engine is
    refused to another call on a second engine that never saw it (no shared
    memory: the hold is a committed conditional UPDATE); the Stop, seen by
    the second engine, gives it back for both."""
    eng, store, _ = engine_on(db, fraud_active=True)
    other = Engine(CachedStore(SqlStore(db)), eng.catalog, eng.settings, clock=lambda: NOW)
    assert other.store.find_account("193.100.201.1") is not None  # cached before the hold
    assert eng.authenticate(authz("h1")).accept
    second = other.authenticate(authz("h2"))
    assert not second.accept and second.code == ReturnCode.ACCOUNT_IN_USE
    assert other.authenticate(authz("h1")).accept  # the same call, on either engine
    stop = stop_request("h1", "0")
    assert other.store.apply([other.accounting_op(stop)], NOW) == [True]
    store.refresh_accounts()
    assert eng.authenticate(authz("h3")).accept


def test_a_customer_refusal_leaves_the_calls_own_login_hold(db):
    """A debit account's call authenticated (the login hold is its own),
    then its authorization refused by the customer's call limit: the
    account gets its reservation and call count back, and the hold stays
    the call's, so a second call is still refused while the first one's
    session lasts. The Stop frees it."""
    eng, store, _ = engine_on(db, fraud_active=True)
    assert eng.authenticate(authz("h1")).accept
    with db.begin() as c:
        c.execute(update(m.Customer).where(m.Customer.name == "testgatewayprepaid")
                  .values(max_calls=0))
        before = c.execute(select(m.Account.reserved, m.Account.calls, m.Account.login_call)
                           .where(m.Account.account_id == "193.100.201.1")).one()
    store.reload()
    refused = eng.authorize(authz("h1"))
    assert not refused.accept and refused.code == ReturnCode.ACCOUNT_IN_USE
    with db.connect() as c:
        after = c.execute(select(m.Account.reserved, m.Account.calls, m.Account.login_call)
                          .where(m.Account.account_id == "193.100.201.1")).one()
        customer_calls = c.execute(select(m.Customer.calls).where(
            m.Customer.name == "testgatewayprepaid")).scalar_one()
    assert tuple(after) == tuple(before) and after.login_call.endswith("h1")
    assert customer_calls == 0
    store.refresh_accounts()
    second = eng.authenticate(authz("h2"))
    assert not second.accept and second.code == ReturnCode.ACCOUNT_IN_USE
    stop = stop_request("h1", "0")
    assert store.apply([eng.accounting_op(stop)], NOW) == [True]
    store.refresh_accounts()
    assert eng.authenticate(authz("h3")).accept
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []


def test_a_stale_no_funds_at_authentication_is_asked_of_the_database(db):
    """The cache says the debit account's money is all held by calls, but
    those calls ended a moment ago on another engine: the authentication
    reads the account again and is accepted; with the money really held,
    it is refused."""
    eng, store, _ = engine_on(db, fraud_active=False)
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(reserved=Decimal("1.02")))
    store.reload()
    acct = store.find_account("193.100.201.1")
    assert acct is not None and acct.funds_left <= 0  # cached: nothing left
    with db.begin() as c:  # the calls ended on another engine
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(reserved=0))
    decision = eng.authenticate(authz("s1"))
    assert decision.accept, decision
    with db.begin() as c:  # now it is really held
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(reserved=Decimal("1.02")))
    store.reload()
    refused = eng.authenticate(authz("s2"))
    assert not refused.accept and refused.code == ReturnCode.ZERO_BALANCE


@pytest.mark.integration  # a throw-away MariaDB: SQLite has no row locks to order
@pytest.mark.parametrize("with_grants", [False, True])
def test_two_engines_stop_batches_never_deadlock(mariadb_db, caplog, with_grants):
    """Two engines commit Stop batches at the same moment, again and again:
    each charges the one account, its customer and the one vendor, and
    writes their xDRs. No transaction is chosen as a deadlock victim: each
    locks accounts, customers and vendors (in that order) before inserting
    the rows whose foreign keys point at them. Inserting the xDRs first had
    both hold shared locks on the same parents, then both wait to update
    them (InnoDB's 1213, seen in bench/bench_radius.py with two processes).
    ``with_grants``: each batch also authorizes calls (a busy engine's batch
    mixes both); their accounts are locked in the same round."""
    import threading

    db = mariadb_db
    eng, _store, _ = engine_on(db, fraud_active=False)
    with db.begin() as c:
        c.execute(update(m.Account).values(balance=Decimal("1000")))
    engines = [eng, Engine(CachedStore(SqlStore(db)), eng.catalog, EngineSettings(
        fraud_active=False), clock=lambda: NOW)]

    def stop(conf: str, origin: str) -> CallRequest:
        return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", called="59322891834",
                           calling="193.100.201.1", conf_id=conf, call_origin=origin,
                           remote_address="65.218.170.184", status_type="Stop",
                           session_id=f"{conf}-{origin}", session_time="60",
                           ivr_out=["PortaBilling_UserName:193.100.201.1"])

    rounds, calls = 30, 4
    results: list[list[bool | None]] = []
    with caplog.at_level("INFO", logger="billing.store"):
        for r in range(rounds):
            start = threading.Barrier(2)

            def commit(k: int, r: int = r, start: threading.Barrier = start) -> None:
                e = engines[k]
                ops = [e.accounting_op(stop(f"dl-{r}-{k}-{i}", origin))
                       for i in range(calls) for origin in ("originate", "answer")]
                if with_grants:
                    plans = [e.plan_authorization(authz(f"dlg-{r}-{k}-{i}", account))
                             for i in range(2) for account in ("193.100.201.1", "4202111222")]
                    ops += [p.op for p in plans if isinstance(p, AuthorizationPlan)]
                start.wait()
                results.append(e.store.apply(ops, NOW))

            threads = [threading.Thread(target=commit, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    assert "lost a lock conflict" not in caplog.text
    # every Stop stored (a grant may be refused: the held funds run out)
    assert len(results) == 2 * rounds and all(all(r[:2 * calls]) for r in results)
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []  # every grant's hold is its calls' sum
    with db.connect() as c:
        n_acct = c.execute(select(func.count()).select_from(m.AccountXDR)).scalar()
        n_vend = c.execute(select(func.count()).select_from(m.VendorXDR)).scalar()
    assert n_acct == n_vend == 2 * rounds * calls  # every Stop charged once


def test_calls_authorized_again_are_granted_together_with_their_money_back(db, monkeypatch):
    """A gateway that fails over sends its calls' authorizations again (to
    the other server, or to this one after a timeout). Each gives its old
    reservation back and is granted anew in the batch's few statements,
    its proposal decided again with the money given back; call by call (a
    round trip each), a storm of them at 1,000/s outran the committer.
    Only what still does not fit goes the careful way."""
    eng, store, _ = engine_on(db, fraud_active=False)
    assert credit_time(eng.authorize(authz("again-1"))) == 180  # 0.87 of 1.02 held
    careful: list[str] = []
    real = SqlStore._grant

    def grant(self, conn, op, *args, **kwargs):  # type: ignore[no-untyped-def]
        careful.append(op.call_key)
        return real(self, conn, op, *args, **kwargs)

    monkeypatch.setattr(SqlStore, "_grant", grant)
    # The cache proposes from the 0.15 left (not a minute at 0.29); with the
    # call's own 0.87 given back, 180 s again, granted together.
    again = eng.plan_authorization(authz("again-1"))
    assert isinstance(again, AuthorizationPlan) and again.op.reserve is not None
    assert again.op.reserve.proposal is None
    assert credit_time(eng._now(again)) == 180
    assert careful == []
    # In one batch, the same call again and a new call on the same money:
    # the first keeps its 180 s together, the second is refused the careful way.
    plans = [eng.plan_authorization(authz(k)) for k in ("again-1", "again-2")]
    assert all(isinstance(p, AuthorizationPlan) for p in plans)
    assert store.apply([p.op for p in plans], NOW) == [True, False]  # type: ignore[union-attr]
    assert [credit_time(p.finish()) for p in plans] == [180, 0]  # type: ignore[union-attr]
    assert careful == ["again-2"]
    cached = store.accounts.get("193.100.201.1")  # moved as the database moved
    assert cached is not None and cached.reserved == Decimal("0.87") and cached.calls == 1
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []
        reserved = c.execute(select(m.Account.reserved).where(
            m.Account.account_id == "193.100.201.1")).scalar_one()
        assert Decimal(reserved) == Decimal("0.87")
        assert c.execute(select(func.count()).select_from(m.ActiveCall)).scalar_one() == 1


# ------------------------------------------------------------ kept connection
def _checkouts(db):  # type: ignore[no-untyped-def]
    seen = {"checkout": 0, "checkin": 0}

    def on_checkout(*_):  # type: ignore[no-untyped-def]
        seen["checkout"] += 1

    def on_checkin(*_):  # type: ignore[no-untyped-def]
        seen["checkin"] += 1

    event.listen(db.pool, "checkout", on_checkout)
    event.listen(db.pool, "checkin", on_checkin)
    return seen


def test_a_committer_thread_keeps_one_connection_between_batches(db):
    """Inside ``holding`` (the committer's threads) every batch runs on one
    connection, taken from the pool once and given back when told (idle):
    no ping and no ROLLBACK per batch. Outside it, each batch is the pool's."""
    eng, store, _ = engine_on(db, fraud_active=False)
    store.find_account("193.100.201.1")
    pool = _checkouts(db)
    with store.holding():
        for conf in ("k1", "k2", "k3"):
            assert store.apply([eng.accounting_op(stop_request(conf, "6"))], NOW) == [True]
        assert pool == {"checkout": 1, "checkin": 0}
        store.release_held()
        assert pool == {"checkout": 1, "checkin": 1}
        assert store.apply([eng.accounting_op(stop_request("k4", "6"))], NOW) == [True]
        assert pool == {"checkout": 2, "checkin": 1}
    assert pool == {"checkout": 2, "checkin": 2}  # given back on the way out
    assert store.apply([eng.accounting_op(stop_request("k5", "6"))], NOW) == [True]
    assert pool == {"checkout": 3, "checkin": 3}
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ProcessedAccounting)).scalar() == 5


def test_a_kept_connection_killed_fails_one_batch_and_the_next_takes_a_fresh_one(mariadb_db):
    """The server kills the committer's kept connection (a restart, a
    DBA's KILL): that batch is not acknowledged, the connection is thrown
    away, and the gateway's retransmission is stored once, on a new one."""
    from billing.db import DatabaseUnavailable

    eng, store, _ = engine_on(mariadb_db, fraud_active=False)
    store.find_account("193.100.201.1")
    with store.holding():
        assert store.apply([eng.accounting_op(stop_request("d1", "60"))], NOW) == [True]
        held = store.db._held.conn
        victim = held.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        held.rollback()
        with mariadb_db.connect() as admin:
            admin.exec_driver_sql(f"KILL {int(victim)}")
        op = eng.accounting_op(stop_request("d2", "60"))
        with pytest.raises(DatabaseUnavailable):
            store.apply([op], NOW)
        assert store.db._held.conn is None  # thrown away, not kept
        again = eng.accounting_op(stop_request("d2", "60"))  # the retransmission
        assert store.apply([again], NOW) == [True]
        assert store.db._held.conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar() != victim
        store.db._held.conn.rollback()
        assert store.apply([again], NOW) == [False]  # once
    acct = store.find_account("193.100.201.1")
    assert acct is not None and acct.balance == Decimal("1.02") - 2 * Decimal("0.19")  # d1, d2


def test_the_committer_holds_its_store_and_lets_go_when_idle():
    """Each committer thread runs inside ``hold`` and calls ``idle`` once it
    has had nothing to do for half a second (real threads, real waits)."""
    import threading
    import time
    from contextlib import contextmanager

    events: list[str] = []
    done = threading.Event()

    @contextmanager
    def hold():  # type: ignore[no-untyped-def]
        events.append("hold")
        yield
        events.append("let go")

    def commit(batch: list[int]) -> None:
        events.append(f"batch {batch}")
        done.set()

    c: Committer[int] = Committer(commit, lambda _: None, hold=hold,
                                  idle=lambda: events.append("idle"))
    c.start()
    c.submit(1)
    assert done.wait(5)
    deadline = time.monotonic() + 5
    while "idle" not in events and time.monotonic() < deadline:
        time.sleep(0.05)
    c.stop()
    assert events[:3] == ["hold", "batch [1]", "idle"]
    assert events[-1] == "let go" and events.count("hold") == 1


def test_a_batch_of_stops_reads_its_duplicates_and_its_calls_in_one_round_trip(db, monkeypatch):
    """The records seen before and the calls the Stops end are read (and the
    calls locked) together, then the writes go: two round trips before the
    COMMIT, not three. A duplicate Stop's call is read but not released."""
    from billing.sql_pipeline import Pipeline

    eng, store, _ = engine_on(db, fraud_active=False, max_credit_time=600)  # 2.90 each
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == "193.100.201.1")
                  .values(balance=Decimal("10")))
    store.reload()
    for conf in ("r1", "r2"):
        assert credit_time(eng.authorize(authz(conf))) > 0
    assert store.apply([eng.accounting_op(stop_request("r2", "60"))], NOW) == [True]
    assert credit_time(eng.authorize(authz("r3"))) > 0
    trips: list[int] = []
    real_run = Pipeline.run

    def counted(self):  # type: ignore[no-untyped-def]
        out = real_run(self)
        if out:
            trips.append(len(out))
        return out

    monkeypatch.setattr(Pipeline, "run", counted)  # a spy: the real method runs
    batch = [eng.accounting_op(stop_request(c, "60")) for c in ("r1", "r2", "r3")]
    assert store.apply(batch, NOW) == [True, False, True]
    assert len(trips) == 2, trips
    monkeypatch.undo()
    acct = store.find_account("193.100.201.1")
    assert acct is not None and acct.reserved == 0 and acct.calls == 0
    assert acct.balance == Decimal("10") - 3 * Decimal("0.19")
    with db.connect() as c:
        assert list(reserved_sums_agree(c)) == []
        assert c.execute(select(func.count()).select_from(m.ActiveCall)).scalar() == 0

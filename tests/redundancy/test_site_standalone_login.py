"""Stand-alone keeps the login hold of debit accounts under [Fraud_Detection]
in the delta database, as normal mode keeps ``accounts.login_call``
(docs/billing.md "The login hold"), two engines on one delta never spend
the same money, and its expiry sweep keeps to the sweep cutoff
(billing/db_clock.py). The stand-by is the primary's own SQLite file
here (as in test_site_effective_balance.py); the delta is SQLite and a real
throw-away MariaDB."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import update as sa_update
from sqlalchemy.engine import Engine

from billing import schema
from billing.db import engine_for_url
from billing.db_clock import SweepCutoff
from billing.provision import apply_document
from billing.store import AccountingOp, OpKind, Refusal, Reservation, ReserveRequest
from redundancy.site import delta as d
from redundancy.site.standalone_store import StandaloneStore
from tests.redundancy.site_rig import EXAMPLE

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 30, 12, 0)
RECOVERY = dt.timedelta(seconds=60)  # [Fraud_Detection] Recovery_Time_sec

# the example's site plus a debit account: the kind the hold is for
DOC = copy.deepcopy(EXAMPLE)
DOC["accounts"].append({"account_id": "777", "customer": "ABC", "product": "Residential",
                        "billing_model": "debit", "balance": "5.00",
                        "voip_password": "debit-phone"})


@pytest.fixture(params=["sqlite", "mariadb"])
def delta_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'delta.db'}"
    else:
        yield request.getfixturevalue("mariadb_database")


@pytest.fixture
def standby(tmp_path) -> Iterator[Engine]:
    engine = engine_for_url(f"sqlite:///{tmp_path / 'primary.db'}")
    schema.upgrade(engine)
    apply_document(engine, DOC)
    yield engine
    engine.dispose()


@pytest.fixture
def delta(delta_url) -> Iterator[Engine]:
    engine = engine_for_url(delta_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(standby, delta) -> StandaloneStore:
    s = StandaloneStore(standby, delta, "site-b")
    s.ensure_schema()
    return s


def debit_pk(store: StandaloneStore) -> int:
    acct = store.find_account("777")
    assert acct is not None and acct.billing_model == "debit"
    return acct.pk


def login(pk: int, call: str, now: dt.datetime = NOW) -> AccountingOp:
    """What the engine's authentication sends (Engine.plan_authentication)."""
    hold = ReserveRequest(account_pk=pk, customer_pk=None, exclusive_login=True,
                          login_until=now + RECOVERY, proposal=Reservation(0, Decimal(0)),
                          decide=lambda _funds: None, lifetime=0)
    return AccountingOp(session_key="", kind=OpKind.LOGIN, call_key=call, account_pk=pk,
                        reserve=hold)


def authorize(pk: int, call: str, now: dt.datetime = NOW) -> AccountingOp:
    """What the engine's authorization sends for a debit account under fraud detection."""
    def decide(funds: Decimal) -> Reservation | None:
        return Reservation(60, Decimal("0.10")) if funds >= Decimal("0.10") else None

    req = ReserveRequest(account_pk=pk, customer_pk=None, exclusive_login=True,
                         login_until=now + RECOVERY, proposal=decide(Decimal(5)), decide=decide,
                         lifetime=120)
    return AccountingOp(session_key="", kind=OpKind.RESERVE, call_key=call, leg="authorize",
                        account_pk=pk, reserve=req)


def stop(pk: int, call: str) -> AccountingOp:
    return AccountingOp(session_key=call + "|stop", kind=OpKind.STOP, call_key=call,
                        account_pk=pk, billing_model="debit", logout_pk=pk)


def outcome(store: StandaloneStore, op: AccountingOp,
            now: dt.datetime = NOW) -> tuple[bool, Refusal | None]:
    assert op.reserve is not None
    [ok] = store.apply([op], now)
    assert (op.reserve.granted is not None) == ok
    return ok, op.reserve.refused


def test_a_second_call_is_refused_until_the_first_stops(store):
    pk = debit_pk(store)
    assert outcome(store, login(pk, "call-1")) == (True, None)
    assert outcome(store, login(pk, "call-2")) == (False, Refusal.LOGIN)
    assert outcome(store, login(pk, "call-1")) == (True, None)  # its own hold: a retransmit
    # the authorization of another call is refused on the login too, not the money
    assert outcome(store, authorize(pk, "call-2")) == (False, Refusal.LOGIN)
    assert store.apply([stop(pk, "call-1")], NOW) == [True]
    assert outcome(store, login(pk, "call-2")) == (True, None)
    # an authorization takes (keeps) the hold as well
    assert outcome(store, authorize(pk, "call-2")) == (True, None)
    assert outcome(store, login(pk, "call-3")) == (False, Refusal.LOGIN)


def test_an_authorization_alone_takes_the_hold(store):
    pk = debit_pk(store)
    assert outcome(store, authorize(pk, "call-1")) == (True, None)
    assert outcome(store, authorize(pk, "call-2")) == (False, Refusal.LOGIN)
    # a Stop and a new call's authentication in one batch: the Stop first
    op = login(pk, "call-2")
    assert store.apply([stop(pk, "call-1"), op], NOW) == [True, True]


def test_the_hold_lapses_by_login_until(store):
    pk = debit_pk(store)
    assert outcome(store, login(pk, "call-1")) == (True, None)
    later = NOW + RECOVERY - dt.timedelta(seconds=1)
    assert outcome(store, login(pk, "call-2", later), later) == (False, Refusal.LOGIN)
    over = NOW + RECOVERY + dt.timedelta(seconds=1)
    assert outcome(store, login(pk, "call-2", over), over) == (True, None)
    # and the new hold is call-2's
    assert outcome(store, login(pk, "call-1", over), over) == (False, Refusal.LOGIN)


def test_the_stop_of_another_call_does_not_free_the_hold(store):
    pk = debit_pk(store)
    assert outcome(store, login(pk, "call-1")) == (True, None)
    assert store.apply([stop(pk, "call-9")], NOW) == [True]
    assert outcome(store, login(pk, "call-2")) == (False, Refusal.LOGIN)


def race(stores: dict[str, StandaloneStore], batches: dict[str, list[AccountingOp]],
         pk: int) -> dict[str, bool]:
    """Each store applies its batch at the same moment (two engine
    processes); whether each one's op on account ``pk`` was granted."""
    gate = threading.Barrier(len(stores))
    won: dict[str, bool] = {}
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            gate.wait()
            results = stores[name].apply(batches[name], NOW)
            won[name] = results[[op.account_pk for op in batches[name]].index(pk)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(name,)) for name in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return won


def test_two_engines_on_one_delta_one_wins(standby, delta):
    """Two stand-alone stores (two engine processes) race for one account's
    hold, round after round: exactly one wins each time."""
    a = StandaloneStore(standby, delta, "site-b")
    b = StandaloneStore(standby, delta, "site-b")
    a.ensure_schema()
    b.ensure_schema()
    pk = debit_pk(a)
    for n in range(20):
        calls = {"a": f"a-{n}", "b": f"b-{n}"}
        won = race({"a": a, "b": b}, {k: [login(pk, c)] for k, c in calls.items()}, pk)
        assert sorted(won.values()) == [False, True], won
        winner = next(name for name, ok in won.items() if ok)
        assert a.apply([stop(pk, calls[winner])], NOW) == [True]


def spend(pk: int, call: str, amount: Decimal) -> AccountingOp:
    """An authorization without the login hold (fraud detection off) that
    wants ``amount`` for a minute or nothing."""
    def decide(funds: Decimal) -> Reservation | None:
        return Reservation(60, amount) if funds >= amount else None

    req = ReserveRequest(account_pk=pk, customer_pk=None, exclusive_login=False,
                         login_until=None, proposal=decide(Decimal(5)), decide=decide,
                         lifetime=120)
    return AccountingOp(session_key="", kind=OpKind.RESERVE, call_key=call, leg="authorize",
                        account_pk=pk, reserve=req)


def test_two_engines_on_one_delta_never_spend_the_same_money(standby, delta):
    """Two stand-alone stores (two engine processes of the secondary site)
    authorize calls on the one debit account at the same moment, $3.00 each
    from its $5.00: one is granted, the other refused, round after round,
    and the delta never holds more than the funds. Each engine's batch
    also asks for a second account, in the other engine's opposite order,
    so that two batches locking accounts in request order would deadlock."""
    a = StandaloneStore(standby, delta, "site-b")
    b = StandaloneStore(standby, delta, "site-b")
    a.ensure_schema()
    b.ensure_schema()
    pk = debit_pk(a)
    other = a.find_account("12345")
    assert other is not None
    for n in range(20):
        ops = {"a": [spend(other.pk, f"a-x-{n}", Decimal("0.01")),
                     spend(pk, f"a-{n}", Decimal("3.00"))],
               "b": [spend(pk, f"b-{n}", Decimal("3.00")),
                     spend(other.pk, f"b-x-{n}", Decimal("0.01"))]}
        won = race({"a": a, "b": b}, ops, pk)
        assert sorted(won.values()) == [False, True], (n, won)
        with delta.connect() as conn:
            held = conn.execute(select(func.sum(d.delta_calls.c.reserved)).where(
                d.delta_calls.c.account_pk == pk)).scalar_one()
        assert Decimal(held) == Decimal("3.00")
        winner = next(name for name, ok in won.items() if ok)
        assert a.apply([stop(pk, f"{winner}-{n}")], NOW) == [True]


def test_a_forward_jump_of_now_forgets_no_live_call(store):
    """As SqlStore's sweep (tests/billing/test_billing_clock.py): billing time
    jumps a day ahead, 15 s elapse; the call granted 60 s + 120 s lives on."""
    elapsed = [0.0]
    store.sweep_cutoff = SweepCutoff(elapsed=lambda: elapsed[0])
    pk = debit_pk(store)
    assert outcome(store, authorize(pk, "call-1")) == (True, None)

    def calls() -> int:
        with store.delta.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(d.delta_calls))
                       .scalar_one())

    assert store.expire_calls(NOW) == 0
    elapsed[0] += 15
    assert store.expire_calls(NOW + dt.timedelta(days=1)) == 0
    assert calls() == 1
    # elapsed time past the lifetime: forgotten as always
    elapsed[0] += 200
    assert store.expire_calls(NOW + dt.timedelta(days=1, seconds=200)) == 1
    assert calls() == 0


def test_the_secondary_site_store_is_built_with_the_cutoff(tmp_path, standby):
    """billing/app.py wires the same cutoff into the stand-alone store as into SqlStore."""
    from billing.app import build_store
    from vigil.config import load

    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nRole=secondary\nName=site-b\nState_Dir={tmp_path / 'state'}\n"
                    f"Log_Dir={tmp_path}\n[Delta]\nURL=sqlite:///{tmp_path / 'wired.db'}\n")
    site = build_store(load(conf), standby)
    try:
        assert isinstance(site.inner.sweep_cutoff, SweepCutoff)
    finally:
        site.inner.delta.dispose()


def test_a_delta_from_before_the_hold_gets_its_table(standby, delta):
    """A delta database created before ``delta_logins`` existed gets it from
    ensure_schema, as the other delta tables came."""
    old = [t for t in d.metadata.sorted_tables if t is not d.delta_logins]
    d.metadata.create_all(delta, tables=old)
    assert not sa_inspect(delta).has_table("delta_logins")
    store = StandaloneStore(standby, delta, "site-b")
    store.ensure_schema()
    pk = debit_pk(store)
    assert outcome(store, login(pk, "call-1")) == (True, None)
    assert outcome(store, login(pk, "call-2")) == (False, Refusal.LOGIN)


def test_a_call_that_ends_in_its_own_batch_holds_nothing(store):
    """Its authorization and Stop in one batch (the Stop is applied first, as
    in normal mode): neither its money nor the hold stays behind."""
    pk = debit_pk(store)
    op = authorize(pk, "call-1")
    assert store.apply([op, stop(pk, "call-1")], NOW) == [True, True]
    assert op.reserve is not None and op.reserve.granted is not None
    assert outcome(store, login(pk, "call-2")) == (True, None)
    with store.delta.connect() as conn:
        assert conn.execute(select(func.count()).select_from(d.delta_calls)).scalar_one() == 0


def test_failback_carries_the_live_holds_to_the_primary(standby, delta, store):
    """A call that began in stand-alone and talks on past failback keeps its
    debit account to itself on the primary: failback sets the live hold
    there (again harmlessly on a re-run), never over another call's hold
    on the primary, and not at all once it has lapsed."""
    from billing import models as m
    from redundancy.site.failback import Failback, Report, utcnow

    pk = debit_pk(store)
    now = utcnow().replace(microsecond=0)  # DATETIME keeps whole seconds on MariaDB

    def primary_hold() -> tuple[str, dt.datetime | None]:
        with standby.connect() as conn:
            row = conn.execute(select(m.Account.login_call, m.Account.login_until)
                               .where(m.Account.id == pk)).one()
        return row[0], row[1]

    assert outcome(store, login(pk, "call-1", now), now) == (True, None)
    fb = Failback(standby, delta, "site-b", settle=0)
    fb.prepare()
    assert fb.carry_logins(Report(), dry_run=True) == 1
    assert primary_hold() == ("", None)  # a dry run changes nothing
    report = Report()
    assert fb.carry_logins(report) == 1
    assert primary_hold() == ("call-1", now + RECOVERY)
    assert report.actions == ["carried 1 login hold(s) to the primary"]
    assert fb.carry_logins(Report()) == 1  # a re-run after a kill -9: the same hold
    # the primary's own hold of another call stands
    with standby.begin() as conn:
        conn.execute(sa_update(m.Account).where(m.Account.id == pk)
                     .values(login_call="primary-call", login_until=now + RECOVERY))
    assert fb.carry_logins(Report()) == 0
    assert primary_hold() == ("primary-call", now + RECOVERY)
    # a stand-alone hold that lapsed is left behind
    with standby.begin() as conn:
        conn.execute(sa_update(m.Account).where(m.Account.id == pk)
                     .values(login_call="", login_until=None))
    with delta.begin() as conn:
        conn.execute(sa_update(d.delta_logins).where(d.delta_logins.c.account_pk == pk)
                     .values(login_until=now - dt.timedelta(seconds=1)))
    assert fb.carry_logins(Report()) == 0
    assert primary_hold() == ("", None)


def test_lock_rows_are_made_once_and_again_if_the_delta_lost_them(store, delta):
    """A batch's account lock row is inserted the first time only (its own
    transaction, not one per batch); if the delta loses it under a running
    engine, the next batch makes it again and still locks."""
    from sqlalchemy import delete, event

    pk = debit_pk(store)
    inserts: list[str] = []

    def seen(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if "delta_logins" in statement and statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)

    event.listen(delta, "before_cursor_execute", seen)
    try:
        assert store.apply([spend(pk, "c-1", Decimal("1.00"))], NOW) == [True]
        assert store.apply([spend(pk, "c-2", Decimal("1.00"))], NOW) == [True]
        assert len(inserts) == 1
        with delta.begin() as conn:
            conn.execute(delete(d.delta_logins))
        assert store.apply([spend(pk, "c-3", Decimal("1.00"))], NOW) == [True]
        assert len(inserts) == 2
    finally:
        event.remove(delta, "before_cursor_execute", seen)
    with delta.connect() as conn:
        assert conn.execute(select(func.count()).select_from(d.delta_logins)).scalar_one() == 1
        held = conn.execute(select(func.sum(d.delta_calls.c.reserved)).where(
            d.delta_calls.c.account_pk == pk)).scalar_one()
    assert Decimal(held) == Decimal("3.00")

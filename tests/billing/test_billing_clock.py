"""A clock that jumps (issue 13): billing tells time by the database's clock
(billing/db_clock.py), so one server's wall clock stepping forward or back
expires no other engine's live call early, releases no reservation twice,
and lets no second call past the login hold; and it says so in one line.

The unit tests drive injected clocks (this machine's wall clock, its
elapsed-time clock, the database's clock) around real engines on one SQLite
file. The integration test runs two `vigil radiusd` on a throw-away MariaDB;
the test steps one's wall clock through an injection hook (below).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pyrad import packet as rp
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine as SAEngine

from billing import models as m
from billing import schema
from billing.cached_store import CachedStore
from billing.calls import Lifetimes, list_calls
from billing.catalog import Catalog
from billing.db import engine_for_url
from billing.db_clock import BillingClock, SweepCutoff
from billing.engine import Engine, EngineSettings, ReturnCode
from billing.provision import apply_document, load_document
from billing.request import CallRequest
from billing.store import SqlStore, reserved_sums_agree
from billing.testing import BillingSandbox
from vigil.testing.radius_fuzz import fill_stop

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_document(ROOT / "etc" / "demo" / "provision.yaml")
ACCOUNT = "193.100.201.1"  # a debit account of the demo: 0.29 a minute
T0 = dt.datetime(2026, 11, 30, 12, 0, 0)
DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)
# A window of 2 s, calls 30 s past their credit time (60 s at most), a login
# hold of 1,800 s (shorter than the hour the wall clock steps back).
SETTINGS = EngineSettings(radius_retransmits=2, radius_timeout=1, alive_interval=10,
                          incoming_session_lifetime=5, default_lifetime=30,
                          max_credit_time=60, fraud_active=True, fraud_recovery_sec=1800)


class Machine:
    """One server's clocks: the wall clock (which an NTP step or a VM resume
    moves) and the elapsed-time clock (which nothing steps)."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.offset = dt.timedelta(0)

    def elapsed(self) -> float:
        return self.seconds

    def wall(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.seconds - 1000.0) + self.offset

    def step(self, delta: dt.timedelta) -> None:
        self.offset += delta


class Database:
    """The database server's clock: real time on its own machine, plus any
    jump given it."""

    def __init__(self, machines: list[Machine]) -> None:
        self.machines = machines
        self.jump = dt.timedelta(0)
        self.reads = 0

    def __call__(self) -> dt.datetime:
        self.reads += 1
        return T0 + dt.timedelta(seconds=self.machines[0].seconds - 1000.0) + self.jump


class World:
    """Two servers (their clocks advance together), the database's clock."""

    def __init__(self) -> None:
        self.a, self.b = Machine(), Machine()
        self.db = Database([self.a])

    def advance(self, seconds: float) -> None:
        self.a.seconds += seconds
        self.b.seconds += seconds


def billing_clock(world: World, machine: Machine) -> BillingClock:
    clock = BillingClock(world.db, elapsed=machine.elapsed, wall=machine.wall)
    clock.anchor()
    return clock


# ---------------------------------------------------------------- the clock
@pytest.mark.parametrize("step,line", [
    (DAY, "local wall clock stepped forward by 86400.000 s"),
    (-HOUR, "local wall clock stepped back by 3600.000 s"),
])
def test_a_wall_clock_step_is_invisible_to_billing_and_logged_once(step, line, caplog):
    world = World()
    clock = billing_clock(world, world.b)
    world.advance(5)
    world.b.step(step)
    assert clock() == T0 + dt.timedelta(seconds=5)  # before any re-anchoring
    with caplog.at_level(logging.INFO, "billing.db_clock"):
        assert clock.anchor() == 0.0  # the database's time agrees: nothing to correct
        world.advance(5)
        clock.anchor()
        world.advance(5)
        clock.anchor()
    assert clock() == T0 + dt.timedelta(seconds=15)
    lines = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in lines] == [line]
    assert "billing keeps the database clock's time 2026-11-30T12:00:05" in lines[0].getMessage()


def test_reading_billing_time_never_waits_on_the_database():
    world = World()
    clock = billing_clock(world, world.a)
    reads = world.db.reads
    for i in range(1, 1001):
        world.advance(0.01)
        assert (clock() - T0).total_seconds() == pytest.approx(i * 0.01, abs=1e-5)
    assert world.db.reads == reads  # only anchor() asks the database


def test_drift_within_the_tolerance_is_taken_silently(caplog):
    world = World()
    clock = billing_clock(world, world.a)
    world.advance(10)
    world.db.jump = dt.timedelta(seconds=0.4)
    with caplog.at_level(logging.WARNING, "billing.db_clock"):
        correction = clock.anchor()
    assert correction == pytest.approx(0.4)
    assert clock() == T0 + dt.timedelta(seconds=10.4)
    assert caplog.records == []


def test_a_slow_reading_corrects_nothing(caplog):
    """A round trip longer than the tolerance (a busy database) says too
    little about when the database read its clock: billing time keeps counting."""
    world = World()
    clock = billing_clock(world, world.a)

    def slow() -> dt.datetime:
        world.advance(3)
        return T0 + dt.timedelta(seconds=world.a.seconds - 1000.0 - 3 + 1.5)  # read mid-way

    clock.reference = slow
    world.advance(10)
    with caplog.at_level(logging.INFO, "billing.db_clock"):
        assert clock.anchor() == 0.0
    assert clock() == T0 + dt.timedelta(seconds=13)
    assert "clock not re-read: the round trip took 3.000 s" in caplog.text


@pytest.mark.parametrize("jump,words", [(DAY, "jumped forward by 86400.000 s"),
                                        (-HOUR, "jumped back by 3600.000 s")])
def test_a_jump_of_the_database_clock_is_followed_and_logged(jump, words, caplog):
    world = World()
    clock = billing_clock(world, world.a)
    world.advance(10)
    world.db.jump = jump
    with caplog.at_level(logging.WARNING, "billing.db_clock"):
        clock.anchor()
        world.advance(5)
        clock.anchor()  # once: the jump is behind us
    assert clock() == T0 + dt.timedelta(seconds=15) + jump
    assert len(caplog.records) == 1 and words in caplog.records[0].getMessage()


def test_the_sweep_never_runs_faster_than_elapsed_time(caplog):
    world = World()
    cutoff = SweepCutoff(elapsed=world.a.elapsed)
    assert cutoff(T0) == T0
    world.advance(10)
    assert cutoff(T0 + dt.timedelta(seconds=10)) == T0 + dt.timedelta(seconds=10)
    world.advance(10)
    with caplog.at_level(logging.WARNING, "billing.db_clock"):
        held = cutoff(T0 + dt.timedelta(seconds=20) + DAY)  # billing time jumped a day
    assert held == T0 + dt.timedelta(seconds=20.01)  # 10 s elapsed, +0.1 %
    assert "call expiry held back 86399.990 s behind billing time" in caplog.text
    world.advance(1000)
    assert cutoff(T0 + dt.timedelta(seconds=1020) + DAY) == \
        T0 + dt.timedelta(seconds=20.01 + 1001)  # the lag shrinks by 0.1 % of the time only
    world.advance(10)
    back = T0 + dt.timedelta(seconds=100)  # a step back is taken at once: the safe side
    assert cutoff(back) == back


@pytest.mark.parametrize("max_credit_time", [60, 14_400, 172_800])
def test_after_a_forward_jump_the_longest_call_keeps_half_its_margin(max_credit_time):
    """A call authorized just before billing time jumped a day forward is
    forgotten no sooner than its credit time plus half of what it lives
    past it ([Call_Cleanup] defaults: 135 s), however long its credit time."""
    lifetimes = Lifetimes()
    world = World()
    cutoff = SweepCutoff(elapsed=world.a.elapsed,
                         speedup=lifetimes.sweep_speedup(max_credit_time))
    assert cutoff(T0) == T0
    expires_at = T0 + dt.timedelta(seconds=max_credit_time + lifetimes.after_credit_time)
    lived = 0.0
    while cutoff(T0 + DAY + dt.timedelta(seconds=lived)) <= expires_at:
        world.advance(lifetimes.sweep_interval)
        lived += lifetimes.sweep_interval
    assert lived >= max_credit_time + lifetimes.after_credit_time / 2


# ------------------------------------------- two engines, one database file
def _call(conf: str) -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="NextoneUserA",
                       called="441259322891834", calling=ACCOUNT, conf_id=conf,
                       ivr_out=[f"PortaBilling_UserName:{ACCOUNT}",
                                "PortaBilling_Ignore_Password:YES"])


def _stop(conf: str, seconds: int) -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="NextoneUserA",
                       called="441259322891834", calling=ACCOUNT, conf_id=conf,
                       call_origin="originate", remote_address="65.218.170.184",
                       status_type="Stop", session_id=f"s-{conf}", session_time=str(seconds),
                       ivr_out=[f"PortaBilling_UserName:{ACCOUNT}"])


class Cluster:
    """Engines A and B (each its own store and cache) on one SQLite file."""

    def __init__(self, db: SAEngine, world: World, *, database_clock: bool) -> None:
        self.db = db
        self.world = world
        cat = Catalog(db)
        cat.load()
        self.engines: dict[str, Engine] = {}
        self.clocks: dict[str, BillingClock] = {}
        for name, machine in (("a", world.a), ("b", world.b)):
            sql = SqlStore(db)
            if database_clock:
                sql.sweep_cutoff = SweepCutoff(elapsed=machine.elapsed)
                clock = billing_clock(world, machine)
                self.clocks[name] = clock
                self.engines[name] = Engine(CachedStore(sql), cat, SETTINGS, clock=clock)
            else:  # the engines before this issue: each its own wall clock
                self.engines[name] = Engine(CachedStore(sql), cat, SETTINGS,
                                            clock=machine.wall)
            self.sweep(name)  # a server sweeps as it starts

    def anchor(self) -> None:
        """The clock chore, on every engine."""
        for clock in self.clocks.values():
            clock.anchor()

    def authorize(self, name: str, conf: str) -> tuple[bool, int]:
        d = self.engines[name].authorize(_call(conf))
        return d.accept, d.code

    def stop(self, name: str, conf: str, seconds: int) -> bool | None:
        eng = self.engines[name]
        return eng.store.apply([eng.accounting_op(_stop(conf, seconds))], eng.clock())[0]

    def sweep(self, name: str) -> int:
        """The expiry chore, as the server runs it."""
        eng = self.engines[name]
        return eng.store.expire_calls(eng.clock())

    def calls(self) -> dict[str, Decimal]:
        with self.db.connect() as c:
            return {call.call_id: call.reserved for call in list_calls(c)}

    def money(self) -> tuple[Decimal, Decimal, int]:
        """Balance, reserved, xDRs; the running sums checked against the calls."""
        with self.db.connect() as c:
            assert list(reserved_sums_agree(c)) == []
            row = c.execute(select(m.Account.balance, m.Account.reserved).where(
                m.Account.account_id == ACCOUNT)).one()
            xdrs = c.execute(select(func.count()).select_from(m.AccountXDR)).scalar_one()
        return Decimal(row.balance), Decimal(row.reserved), int(xdrs)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SAEngine]:
    db = engine_for_url(f"sqlite:///{tmp_path / 'billing.db'}")
    schema.upgrade(db)
    apply_document(db, DEMO)
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == ACCOUNT).values(
            balance=Decimal("10")))
    yield db
    db.dispose()


@pytest.mark.parametrize("step", [DAY, -HOUR], ids=["wall+1day", "wall-1hour"])
def test_a_wall_clock_step_on_one_engine_spends_nothing_twice(database, step, caplog):
    world = World()
    cluster = Cluster(database, world, database_clock=True)
    assert cluster.authorize("a", "c1") == (True, ReturnCode.SUCCESS)  # 60 s granted
    balance, reserved, _ = cluster.money()
    assert reserved == Decimal("0.29")
    world.advance(5)
    world.b.step(step)  # NTP steps server B's wall clock
    with caplog.at_level(logging.WARNING, "billing"):
        cluster.anchor()
        for _ in range(4):  # a minute of sweeps, well within c1's 60 + 32 s
            world.advance(15)
            cluster.anchor()
            assert cluster.sweep("b") == 0
            assert cluster.sweep("a") == 0
        # the login hold: B refuses a second call while A's holds the account,
        assert cluster.authorize("b", "c2") == (False, ReturnCode.ACCOUNT_IN_USE)
    assert cluster.calls() == {"c1": Decimal("0.29")}  # still up, its money still held
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == \
        [f"local wall clock stepped {'forward' if step > dt.timedelta(0) else 'back'} by "
         f"{abs(step.total_seconds()):.3f} s"]
    # the Stop reaches B, its retransmission A: charged once, released once
    assert cluster.stop("b", "c1", 60) is True
    assert cluster.stop("a", "c1", 60) is False
    assert cluster.money() == (balance - Decimal("0.29"), Decimal(0), 1)
    # and the other way round: a call B authorized holds the account on A
    assert cluster.authorize("b", "c3")[0]
    assert cluster.authorize("a", "c4") == (False, ReturnCode.ACCOUNT_IN_USE)
    world.advance(30)
    cluster.anchor()
    assert cluster.sweep("a") == 0 and cluster.sweep("b") == 0
    assert set(cluster.calls()) == {"c3"}
    world.advance(63)  # past c3's 60 + 30 + 2 s: its Stop was lost
    cluster.anchor()
    assert cluster.sweep("a") + cluster.sweep("b") == 1  # released once, by one of them
    assert cluster.money() == (balance - Decimal("0.29"), Decimal(0), 1)


@pytest.mark.parametrize("step", [DAY, -HOUR], ids=["wall+1day", "wall-1hour"])
def test_with_wall_clocks_the_same_step_would_spend_money_twice(database, step):
    """The hazard the database's clock removes, shown with the engines'
    former clocks (each its own wall clock): the test above would catch it."""
    world = World()
    cluster = Cluster(database, world, database_clock=False)
    if step > dt.timedelta(0):
        assert cluster.authorize("a", "c1")[0]
        world.advance(5)
        world.b.step(step)
        assert cluster.sweep("b") == 1  # A's live call forgotten, its money given back
        assert cluster.calls() == {}
    else:
        world.b.step(step)
        assert cluster.authorize("b", "c1")[0]  # its login hold written an hour early
        assert cluster.authorize("a", "c2")[0]  # a second call past the hold
        assert set(cluster.calls()) == {"c1", "c2"}


def test_a_forward_jump_of_the_database_clock_forgets_no_live_call(database, caplog):
    """SQLite, or MariaDB's server stepped: billing time follows the database
    (every engine tells the same time, a restarted one too), the sweeps keep
    to elapsed time. (A login hold taken before the jump ends that much
    early: docs/billing.md "Clocks"; the reservations still hold the money.)"""
    world = World()
    cluster = Cluster(database, world, database_clock=True)
    assert cluster.authorize("a", "c1")[0]
    world.advance(5)
    world.db.jump = DAY
    with caplog.at_level(logging.WARNING, "billing"):
        cluster.anchor()
        for _ in range(4):
            world.advance(15)
            assert cluster.sweep("a") == 0 and cluster.sweep("b") == 0
    text = caplog.text
    assert text.count("database clock jumped forward by 86400.000 s") == 2  # A and B
    assert text.count("call expiry held back") == 2
    assert cluster.calls() == {"c1": Decimal("0.29")}
    assert cluster.stop("b", "c1", 60) is True
    assert cluster.stop("a", "c1", 60) is False
    assert cluster.money() == (Decimal("9.71"), Decimal(0), 1)
    # A call authorized after the jump is in the new time: it keeps its
    # whole lifetime too (engines that saw the jump forget it late: money
    # held longer, the safe side, until they restart).
    assert cluster.authorize("b", "c2")[0]
    world.advance(60)
    cluster.anchor()
    assert cluster.sweep("a") == 0 and cluster.sweep("b") == 0
    assert set(cluster.calls()) == {"c2"}


# ------------------------------------------ two real engines on one MariaDB
# Both engines sweep every 2 s ([Call_Cleanup] 8 s lifetimes); calls last
# their credit time + 8 + 2 x 1 s.
SHORT_CLEANUP = ("[Call_Cleanup]\nDefault_Lifetime=8\nAlive_Interval=8\n"
                 "Radius_Retransmits=2\nRadius_Timeout=1\n")
# The injection hook: a sitecustomize module on the engine's PYTHONPATH that
# moves the process's wall clock (vigil.clock.utcnow, the one the project
# reads) by the seconds written in a file, re-read at every reading. Debian's
# libfaketime was the first choice; with its elapsed-time clocks left true
# (FAKETIME_DONT_FAKE_MONOTONIC) Python 3.11's time.sleep fails with EINVAL,
# and with them faked the elapsed-time clock steps too, which no real clock does.
WALL_SHIFT_HOOK = """\
import datetime as _dt
from pathlib import Path as _Path

import vigil.clock as _clock

_true = _clock.utcnow


def _shifted():
    try:
        seconds = float(_Path({path!r}).read_text())
    except (OSError, ValueError):
        seconds = 0.0
    return _true() + _dt.timedelta(seconds=seconds)


_clock.utcnow = _shifted
"""


@contextlib.contextmanager
def shifted_wall_clock(monkeypatch: pytest.MonkeyPatch, hook_dir: Path,
                       shift_file: Path) -> Iterator[None]:
    """Processes started inside read their wall clock ``shift_file``'s seconds off."""
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(WALL_SHIFT_HOOK.format(path=str(shift_file)))
    shift_file.write_text("0\n")
    with monkeypatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))
        yield


def _wait_for(what: str, box: BillingSandbox, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = box.log_text()
        if what in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"no {what!r} in {box.log_file}")


def _account(url: str) -> tuple[Decimal, Decimal]:
    e = engine_for_url(url)
    try:
        with e.connect() as c:
            assert list(reserved_sums_agree(c)) == []
            row = c.execute(select(m.Account.balance, m.Account.reserved).where(
                m.Account.account_id == ACCOUNT)).one()
        return Decimal(row.balance), Decimal(row.reserved)
    finally:
        e.dispose()


def _active(url: str) -> set[str]:
    e = engine_for_url(url)
    try:
        with e.connect() as c:
            return {call.call_id for call in list_calls(c)}
    finally:
        e.dispose()


def _authorize(box: BillingSandbox, conf: str) -> tuple[int, int]:
    """(credit time, h323-return-code) of an authorization on ``box``."""
    c = box.client("nextone", timeout=2.0)
    req = c.auth_packet()
    req["User-Name"] = "NextoneUserA"
    req["NAS-IP-Address"] = "164.4.89.20"
    req["Called-Station-Id"] = "441259322891834"
    req["h323-conf-id"] = conf
    req["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{ACCOUNT}",
                           "h323-ivr-out=PortaBilling_Ignore_Password:YES"]
    reply = c.send(req).packet
    code = int(reply["h323-return-code"][0].rsplit("=", 1)[-1])
    return (int(reply["h323-credit-time"][0]) if reply.code == rp.AccessAccept else 0), code


def _radius_stop(box: BillingSandbox, conf: str, seconds: int) -> bool:
    """An outgoing leg's Stop on ``box``: acknowledged?"""
    c = box.client("nextone", timeout=2.0, retries=3)
    req = fill_stop(c.acct_packet(), conf, "164.4.89.20", ACCOUNT, seconds,
                    called="441259322891834")
    return bool(c.send(req).code == rp.AccountingResponse)


@pytest.mark.integration
def test_two_engines_on_mariadb_one_wall_clock_stepped(mariadb_database, tmp_path,
                                                       monkeypatch):
    """Engine B's wall clock (the injection hook above) steps a day forward,
    then back to an hour behind, while a call engine A authorized is up: B
    forgets none of it, holds A's login, charges A's call once, and logs
    each step in one line."""
    url = mariadb_database
    three_minutes = "Max_Credit_Time_sec=180\n"  # money left for a second call
    a = BillingSandbox(url, base=tmp_path / "a", extra=SHORT_CLEANUP, radius=three_minutes)
    b = BillingSandbox(url, base=tmp_path / "b", extra=SHORT_CLEANUP, radius=three_minutes,
                       provision=None)
    shift = tmp_path / "b-wall-shift"
    in_use = (0, ReturnCode.ACCOUNT_IN_USE)
    try:
        a.prepare().start()
        e = engine_for_url(url)
        with e.begin() as c:
            c.execute(update(m.Account).where(m.Account.account_id == ACCOUNT).values(
                balance=Decimal("20")))
        e.dispose()
        with shifted_wall_clock(monkeypatch, tmp_path / "hook", shift):
            b.start()
        assert _authorize(a, "call-A") == (180, 0)  # 0.87 of 20.00 held
        assert _account(url) == (Decimal(20), Decimal("0.87"))
        for seconds, line in (("86400", "local wall clock stepped forward by 86400.000 s"),
                              ("-3600", "local wall clock stepped back by 90000.000 s")):
            shift.write_text(seconds + "\n")  # server B's wall clock steps
            _wait_for(line, b)  # B re-read the database's clock since
            time.sleep(5)  # B sweeps twice more, re-anchors once
            assert _active(url) == {"call-A"}  # not forgotten: still up, money held
            assert _account(url) == (Decimal(20), Decimal("0.87"))
            assert _authorize(b, "call-B") == in_use  # the login hold holds on B
        assert _radius_stop(b, "call-A", 180)  # B charges A's call, once
        assert _radius_stop(a, "call-A", 180)  # the retransmission to A: acknowledged only
        assert _account(url) == (Decimal("19.13"), Decimal(0))
        assert _authorize(b, "call-C") == (180, 0)  # logged out: B takes the next call
        assert _authorize(a, "call-D") == in_use  # and B's hold holds on A
        text = b.log_text()
        assert text.count("local wall clock stepped") == 2  # one line per step
        assert "forgotten: no Stop" not in text + a.log_text()
    finally:
        b.stop()
        a.stop()


# ---------------------------------------------------------------- heartbeats
def test_heartbeats_are_written_and_read_in_database_time(tmp_path):
    """An engine's heartbeat carries its billing time; `vigil engines` reads
    them against the database's clock (here SQLite's: this machine's)."""
    from billing.heartbeat import Heartbeat, engines
    from vigil.clock import utcnow

    db = engine_for_url(f"sqlite:///{tmp_path / 'billing.db'}")
    try:
        schema.upgrade(db)
        now = utcnow()
        for name, offset in (("in-time", 0), ("an-hour-behind", -3600)):
            beat = Heartbeat(db, "127.0.0.1:1812/1813", lambda: {"access_requests": 2},
                             name=name, clock=lambda o=offset: now + dt.timedelta(seconds=o))
            beat.beat()
        assert [(e["name"], e["requests"]) for e in engines(db)] == [("in-time", 2)]
        assert {e["name"] for e in engines(db, within=7200)} == {"in-time", "an-hour-behind"}
    finally:
        db.dispose()

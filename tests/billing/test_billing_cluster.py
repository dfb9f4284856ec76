"""Several engines on one MariaDB: no money spent twice, whichever engine
decides, however engines die and the database hangs. Real `vigil radiusd`
processes, a real throw-away MariaDB, RADIUS over UDP."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from pyrad import packet as rp
from sqlalchemy import func, select, update

from billing import models as m
from billing.cli import processes_section
from billing.db import engine_for_url
from billing.processes import cpu_plan
from billing.stats_files import ProcessStats, read_engine
from billing.store import reserved_sums_agree
from billing.testing import BillingSandbox
from vigil.config import load
from vigil.processes import pid_alive
from vigil.radius_client import RadiusGarbage, RadiusRefused, RadiusTimeout
from vigil.testing.mariadb import MariaDB
from vigil.testing.radius_fuzz import fill_stop
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # several engines on one throw-away MariaDB

ACCOUNT = "193.100.201.1"
CLD = "441259322891834"


def set_balance(url: str, balance: str, account: str = ACCOUNT) -> None:
    e = engine_for_url(url)
    with e.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == account).values(
            balance=Decimal(balance)))
    e.dispose()


def account_row(url: str, account: str = ACCOUNT):  # type: ignore[no-untyped-def]
    e = engine_for_url(url)
    with e.connect() as c:
        row = c.execute(select(m.Account.__table__).where(
            m.Account.account_id == account)).one()
    e.dispose()
    return row


def authorize(box: BillingSandbox, conf: str, timeout: float = 2.0, retries: int = 1,
              account: str = ACCOUNT) -> int | None:
    """Credit time granted, 0 when refused, None when unanswered."""
    c = box.client("nextone", timeout=timeout, retries=retries)
    req = c.auth_packet()
    req["User-Name"] = "NextoneUserA"
    req["NAS-IP-Address"] = "164.4.89.20"
    req["Called-Station-Id"] = CLD
    req["h323-conf-id"] = conf
    req["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{account}",
                           "h323-ivr-out=PortaBilling_Ignore_Password:YES"]
    try:
        reply = c.send(req).packet
    except RadiusTimeout:
        return None
    if reply.code != rp.AccessAccept:
        return 0
    return int(reply["h323-credit-time"][0])


def stop(box: BillingSandbox, conf: str, seconds: int, timeout: float = 2.0,
         retries: int = 3) -> bool:
    c = box.client("nextone", timeout=timeout, retries=retries)
    req = fill_stop(c.acct_packet(), conf, "164.4.89.20", ACCOUNT, seconds, called=CLD)
    try:
        return c.send(req).code == rp.AccountingResponse
    except (RadiusTimeout, RadiusRefused, RadiusGarbage):
        # no (usable) answer: a reply meant for an earlier socket on the same
        # port fails the authenticator check; a gateway waits and sends again
        return False

NO_FRAUD = "[Fraud_Detection]\nActive=No\n"


@contextlib.contextmanager
def running(*boxes: BillingSandbox) -> Iterator[None]:
    """Engines on one database (the first one prepares it), stopped however the test ends."""
    try:
        boxes[0].prepare()
        for box in boxes:
            box.start()
        yield
    finally:
        for box in boxes:
            box.stop()


def charged(url: str) -> Decimal:
    e = engine_for_url(url)
    with e.connect() as c:
        total = c.execute(select(func.coalesce(func.sum(m.AccountXDR.amount), 0))).scalar_one()
        assert list(reserved_sums_agree(c)) == []  # running sums match the calls
    e.dispose()
    return Decimal(total)


def test_two_engines_six_senders_never_overdraw(mariadb_database, tmp_path):
    """$5.80 at 0.29/min, one minute at most per call: 20 minutes in all,
    decided by two engines for six senders racing; Stops for the full time."""
    # Two committer threads per engine (not the default): the pipelined
    # commits race for the last cent as well as the two engines do.
    one_minute = "Max_Credit_Time_sec=60\nCommit_Threads=2\n"
    a = BillingSandbox(mariadb_database, base=tmp_path / "a", extra=NO_FRAUD, radius=one_minute)
    b = BillingSandbox(mariadb_database, base=tmp_path / "b", extra=NO_FRAUD, radius=one_minute,
                       provision=None)
    with running(a, b):
        set_balance(mariadb_database, "5.80")
        engines = [a, b]
        answered = {0: 0, 1: 0}
        lock = threading.Lock()
        ids = itertools.count()

        def sender(n: int) -> int:
            rng = random.Random(n)
            refused = seconds = 0
            while refused < 3:
                i = next(ids)
                which = rng.randrange(2)
                granted = authorize(engines[which], f"s{n}-{i}")
                if granted is None:
                    continue
                with lock:
                    answered[which] += 1
                if not granted:
                    refused += 1
                    continue
                refused = 0
                seconds += granted
                assert stop(engines[1 - which], f"s{n}-{i}", granted)
            return seconds

        with ThreadPoolExecutor(6) as pool:
            granted = sum(pool.map(sender, range(6)))
    balance = account_row(mariadb_database).balance
    print(f"granted {granted} s, answered per engine {answered}, balance {balance}")
    assert balance >= 0
    assert charged(mariadb_database) <= Decimal("5.80")
    assert answered[0] > 0 and answered[1] > 0
    assert granted <= 20 * 60


@pytest.mark.parametrize("delay", [0.05, 0.4, 1.5])
def test_engine_killed_after_an_accept_never_lets_the_next_overspend(
        mariadb_database, tmp_path, delay):
    """1.02 at 0.29/min: the first call holds 0.87; whatever moment engine A
    dies after its Access-Accept, engine B cannot grant another minute."""
    a = BillingSandbox(mariadb_database, base=tmp_path / "a", extra=NO_FRAUD)
    b = BillingSandbox(mariadb_database, base=tmp_path / "b", extra=NO_FRAUD, provision=None)
    with running(a, b):
        assert authorize(a, "first") == 180
        time.sleep(delay)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        assert authorize(b, "second") == 0
        a.start()  # a restart forgets nothing either
        assert authorize(a, "third") == 0
        assert authorize(a, "first") == 180  # the same call, authorized again
    row = account_row(mariadb_database)
    assert row.reserved <= row.balance


def test_kill_9_in_a_stream_of_stops_loses_nothing_acknowledged_charges_nothing_twice(
        mariadb_database, tmp_path):
    """Four gateways stream Stops while the engine is killed with -9 five
    times at random moments (mid-batch, mid-commit, between commit and
    answer) and restarted. Then every Stop not acknowledged is sent again,
    as gateways do. Each Stop is charged exactly once: none acknowledged was
    lost, none sent twice (before and after a kill) was charged twice."""
    # Two committer threads (not the default): a kill then also lands
    # between one batch's statements and the COMMIT of the batch before it.
    a = BillingSandbox(mariadb_database, base=tmp_path / "a", extra=NO_FRAUD,
                       radius="Commit_Threads=2\n")
    senders = 4
    acked: dict[str, bool] = {}
    lock = threading.Lock()
    done = threading.Event()

    def sender(n: int) -> None:
        for i in itertools.count():
            if done.is_set():
                return
            conf = f"k{n}-{i}"
            ok = stop(a, conf, 60, timeout=0.5, retries=1)
            with lock:
                acked[conf] = ok
            if not ok:
                time.sleep(0.1)  # the engine is down: a gateway waits before its next call

    with running(a):
        set_balance(mariadb_database, "1000")
        with ThreadPoolExecutor(senders) as pool:
            work = [pool.submit(sender, n) for n in range(senders)]
            rng = random.Random(13)
            try:
                for _ in range(5):
                    time.sleep(rng.uniform(0.3, 1.0))
                    assert a.proc is not None
                    os.kill(a.proc.pid, signal.SIGKILL)
                    a.proc.wait()
                    a.start()
                time.sleep(0.5)
            finally:
                done.set()
            for w in work:
                w.result()
        lost = sorted(conf for conf, ok in acked.items() if not ok)
        for conf in lost:  # the gateways send what was never answered again
            assert stop(a, conf, 60, timeout=2.0, retries=3), conf
    e = engine_for_url(mariadb_database)
    with e.connect() as c:
        keys = c.execute(select(m.AccountXDR.session_key)).scalars().all()
        amounts = set(c.execute(select(m.AccountXDR.amount)).scalars().all())
    e.dispose()
    print(f"{len(acked)} Stops, {len(lost)} unanswered during the kills and sent again")
    assert lost  # the kills did hit the stream
    assert len(keys) == len(set(keys)) == len(acked)  # each charged exactly once
    assert len(amounts) == 1
    per_stop = amounts.pop()
    assert charged(mariadb_database) == per_stop * len(acked)
    assert account_row(mariadb_database).balance == Decimal(1000) - per_stop * len(keys)


def test_simultaneous_login_holds_across_engines_and_restarts(mariadb_database, tmp_path):
    a = BillingSandbox(mariadb_database, base=tmp_path / "a")
    b = BillingSandbox(mariadb_database, base=tmp_path / "b", provision=None)
    with running(a, b):
        set_balance(mariadb_database, "20")  # funds for both calls: only the login refuses
        assert authorize(a, "call-A") == 4080  # 20 / 0.29 a minute
        assert authorize(b, "call-B") == 0  # logged in to call-A, on the other engine
        b.stop()
        b.start()
        assert authorize(b, "call-B") == 0  # and after a restart
        assert authorize(b, "call-A") == 4080  # the same call may be authorized again
        assert stop(b, "call-A", 60)
        assert authorize(a, "call-B") > 0  # logged out by the Stop the other engine got


def test_admin_changes_reach_every_engine_within_a_second(db_url, tmp_path):
    """On MariaDB and on SQLite (two engines on one file)."""
    a = BillingSandbox(db_url, base=tmp_path / "a", extra=NO_FRAUD)
    b = BillingSandbox(db_url, base=tmp_path / "b", extra=NO_FRAUD, provision=None)
    with running(a, b):
        assert authorize(a, "c1") == 180 and stop(a, "c1", 0)
        assert authorize(b, "c2") == 180 and stop(b, "c2", 0)  # both have it cached now
        set_balance(db_url, "0.30")  # a charge behind the engines' back
        # at once: the cache may still propose 3 minutes, the database grants one
        assert authorize(a, "c3") == 60
        assert authorize(b, "c4") == 0
        set_balance(db_url, "5.80")  # a top-up
        deadline = time.monotonic() + 1.5
        while authorize(b, "c5") == 0 and time.monotonic() < deadline:
            pass
        assert time.monotonic() < deadline
        # a block: no conditional statement checks it, only what the engines read
        e = engine_for_url(db_url)
        with e.begin() as c:
            c.execute(update(m.Account).where(m.Account.account_id == ACCOUNT).values(
                blocked=True))
        e.dispose()
        deadline = time.monotonic() + 1.5
        calls = itertools.count(6)
        while any(authorize(box, f"c{next(calls)}") for box in (a, b)) and \
                time.monotonic() < deadline:
            pass
        assert time.monotonic() < deadline


def test_a_stop_retransmitted_to_both_engines_charges_once(mariadb_database, tmp_path):
    a = BillingSandbox(mariadb_database, base=tmp_path / "a", extra=NO_FRAUD)
    b = BillingSandbox(mariadb_database, base=tmp_path / "b", extra=NO_FRAUD, provision=None)
    with running(a, b):
        assert authorize(a, "x1") == 180
        with ThreadPoolExecutor(4) as pool:
            acks = list(pool.map(lambda box: stop(box, "x1", 180), [a, b, a, b]))
        assert all(acks)
        # both engines are listed, whichever server's config asks (`vigil status` too)
        listed = json.loads(b.vigil("engines", "--json").stdout)
        assert {e["listen"] for e in listed} == {f"127.0.0.1:{x.auth_port}/{x.acct_port}"
                                                 for x in (a, b)}
    assert charged(mariadb_database) == Decimal("0.87")
    assert account_row(mariadb_database).balance == Decimal("0.15")


@pytest.mark.e2e
def test_self_test_answered_while_the_database_is_stopped(tmp_path):
    """mariadbd SIGSTOPped for 30 s: radcheck's self-test is answered
    throughout; a request that needs the database gets no answer."""
    db = MariaDB("hung", server_id=9)
    db.start()
    try:
        db.create_database("billing")
        with BillingSandbox(db.url("billing"), base=tmp_path / "engine",
                            master="Query_Timeout_sec=2\n") as box:
            assert authorize(box, "warm") == 180  # the account is cached
            assert db.proc is not None
            os.kill(db.proc.pid, signal.SIGSTOP)
            try:
                waiting = threading.Thread(target=authorize, args=(box, "needs-db", 5.0, 1),
                                           daemon=True)
                waiting.start()
                assert authorize(box, "unknown-1", 1.0, 1, account="nobody") is None
                started, answers, misses = time.monotonic(), 0, 0
                while time.monotonic() - started < 30:
                    if box.selftest(timeout=1.0):
                        answers += 1
                    else:
                        misses += 1
                    time.sleep(0.5)
            finally:
                os.kill(db.proc.pid, signal.SIGCONT)
            assert misses == 0 and answers > 20
            deadline = time.monotonic() + 15
            while authorize(box, "after", 1.0, 1) is None and time.monotonic() < deadline:
                pass
            assert time.monotonic() < deadline  # the engine recovered by itself
    finally:
        db.destroy()


def test_processes_share_the_ports_and_a_dead_one_comes_back(tmp_path):
    """[Radius] Processes=2: two engines on one pair of ports (SO_REUSEPORT),
    both listed; one killed with -9 is restarted by the parent."""
    box = BillingSandbox(base=tmp_path / "engine", processes=2, extra=NO_FRAUD)
    with box:
        def listed() -> list[dict]:
            return json.loads(box.vigil("engines", "--json", check=False).stdout or "[]")

        deadline = time.monotonic() + 15
        while len(listed()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        engines = listed()
        assert len(engines) == 2 and len({e["pid"] for e in engines}) == 2
        # CPU_Affinity=Auto: process k and every one of its threads on the
        # k-th CPU this test may use
        plan = cpu_plan("auto", 2)
        wait_until(lambda: len(_live_processes(box)) == 2, 15, what="both counters files")
        for index, p in _live_processes(box).items():
            assert p.pid is not None and pinned(p.pid) == {plan[index]}, p
        victim = engines[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = {e["pid"] for e in listed()} - {victim}
            if len(alive) == 2:
                break
            time.sleep(0.2)
        assert len(alive) == 2, "the parent did not restart the killed engine"
        wait_until(lambda: len(_live_processes(box)) == 2 and victim not in
                   {p.pid for p in _live_processes(box).values()}, 15,
                   what="the restarted process's counters file")
        for index, p in _live_processes(box).items():  # the restarted one on its CPU too
            assert p.pid is not None and pinned(p.pid) == {plan[index]}, p
        for i in range(10):  # both answer, whichever the kernel picks
            assert authorize(box, f"p{i}") == 180 and stop(box, f"p{i}", 0)
        assert "restarting" in box.log_text()
    assert box.proc is not None and box.proc.returncode == 0


def pinned(pid: int) -> set[int | None]:
    """The CPUs of every thread of ``pid``, one set if all have one CPU
    each (None stands for a thread free to run on several)."""
    cpus: set[int | None] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        mask = os.sched_getaffinity(int(tid))
        cpus.add(next(iter(mask)) if len(mask) == 1 else None)
    return cpus


def test_cpu_affinity_no_leaves_the_processes_to_the_scheduler(tmp_path):
    box = BillingSandbox(base=tmp_path / "engine", processes=2, extra=NO_FRAUD,
                         radius="CPU_Affinity=No\n")
    with box:
        wait_until(lambda: len(_live_processes(box)) == 2, 15, what="both counters files")
        procs = _live_processes(box)
        for p in procs.values():
            assert p.pid is not None
            assert os.sched_getaffinity(p.pid) == os.sched_getaffinity(0)
        assert "pinned" not in box.log_text()


def test_chores_keep_their_schedule_under_a_steady_load(tmp_path):
    """100 Stops/s for 4 s: the stats file (every second) is still written
    during the burst, since chores no longer wait for the loop to be idle."""
    box = BillingSandbox(base=tmp_path / "engine", extra=NO_FRAUD)
    with box:
        c = box.client("nextone")
        packets = []
        for i in range(400):
            req = c.acct_packet()
            req["NAS-IP-Address"] = "164.4.89.20"
            req["Acct-Status-Type"] = "Stop"
            req["Called-Station-Id"] = CLD
            req["Acct-Session-Id"] = f"load-{i}"
            req["Acct-Session-Time"] = 1
            req["h323-conf-id"] = f"load-{i}"
            req["h323-call-origin"] = "originate"
            req["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{ACCOUNT}"]
            req.id = i % 256
            packets.append(req.RequestPacket())
        stats = box.state / "radiusd-stats.json"
        stamps: set[int] = set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            started = time.monotonic()
            for i, data in enumerate(packets):
                while time.monotonic() < started + i / 100:
                    time.sleep(0.001)
                s.sendto(data, ("127.0.0.1", box.acct_port))
                if i % 20 == 0 and stats.exists():
                    stamps.add(json.loads(stats.read_text())["updated_at"])
        assert len(stamps) >= 3, stamps  # written at least every second of the burst
        # the garbage collector's pauses are in the file, and in `vigil status`
        written = json.loads(stats.read_text())
        assert {"gc_collections", "gc_pause_ms_max", "gc_slow_pauses"} <= set(written)
        _title, lines, _rows = processes_section(load(box.config))
        assert "gc pauses over 10 ms: " in lines[1], lines


def _live_processes(box: BillingSandbox) -> dict[int, ProcessStats]:
    return {p.index: p for p in read_engine(box.state, max_age=3).live}


def test_a_hung_process_is_killed_and_replaced_and_all_answer_again(tmp_path):
    """[Radius] Processes=2: one engine process stopped with SIGSTOP (its loop
    no longer moves) is killed by the parent after Hung_Process_sec and
    restarted; afterwards self-tests from many client sockets (the kernel
    hashes each to one process) are answered, by both processes."""
    box = BillingSandbox(base=tmp_path / "engine", processes=2, extra=NO_FRAUD,
                         radius="Hung_Process_sec=3\n")
    with box:
        deadline = time.monotonic() + 20
        while len(_live_processes(box)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = _live_processes(box)
        assert sorted(before) == [0, 1], before
        victim = before[1].pid
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = _live_processes(box)
                if 1 in now and now[1].pid != victim:
                    break
                time.sleep(0.2)
            assert 1 in now and now[1].pid != victim, "the hung process was not replaced"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        assert not pid_alive(victim)
        hung = [line for line in box.log_text().splitlines()
                if f"engine process 1 (pid {victim}) hung" in line]
        assert len(hung) == 1 and "SIGKILL" in hung[0], box.log_text()[-3000:]
        assert f"engine process 1 (pid {victim}) ended with status -9: restarting" \
            in box.log_text()
        # Each client has its own socket, hashed to one process by the kernel:
        # 24 of them reach both processes (all on one: a chance of 1 in 8 million).
        first = {i: p.counter("access_requests") for i, p in _live_processes(box).items()}
        assert all(box.selftest(timeout=2.0) for _ in range(24))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = _live_processes(box)
            if sorted(now) == [0, 1] and all(
                    now[i].counter("access_requests") > first.get(i, 0) for i in now):
                break
            time.sleep(0.2)
        assert all(now[i].counter("access_requests") > first.get(i, 0) for i in (0, 1)), now
    assert box.proc is not None and box.proc.returncode == 0


def test_calls_in_a_row_on_two_processes_with_fraud_detection(tmp_path):
    """Each `vigil call` has its own sockets, which the kernel hashes to either
    process for authentication and accounting independently. 20 calls in a row
    of one debit account (no charge): all are accepted, because the login hold
    is the database's, not a process's memory."""
    box = BillingSandbox(base=tmp_path / "engine", processes=2)
    with box:
        for i in range(20):
            p = box.vigil("call", "--duration", "0", check=False)
            assert p.returncode == 0, f"call {i}: {p.stdout}"


def test_money_holds_when_the_watchdog_kills_a_hung_process(mariadb_database, tmp_path):
    """$5.80 at 0.29/min, one minute at most per call, Processes=2 on MariaDB:
    process 1 is frozen (SIGSTOP) while four senders authorize and stop calls
    through fresh sockets (some hashed to the frozen process, answered after
    the watchdog's kill by retransmission). No overdraft, reservations agree
    with the calls, every Stop is acknowledged once the process is replaced."""
    box = BillingSandbox(mariadb_database, base=tmp_path / "engine", processes=2,
                         extra=NO_FRAUD, radius="Max_Credit_Time_sec=60\nHung_Process_sec=3\n")
    with box:
        set_balance(mariadb_database, "5.80")
        deadline = time.monotonic() + 20
        while len(_live_processes(box)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        victim = _live_processes(box)[1].pid
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        ids = itertools.count()

        def sender(n: int) -> int:
            refused = seconds = 0
            while refused < 3:
                conf = f"w{n}-{next(ids)}"
                granted = authorize(box, conf, timeout=2.0, retries=4)
                if granted is None:
                    continue  # abandoned: its reservation expires with the call
                if not granted:
                    refused += 1
                    continue
                refused = 0
                seconds += granted
                assert stop(box, conf, granted, timeout=2.0, retries=4), conf
            return seconds

        try:
            with ThreadPoolExecutor(4) as pool:
                granted = sum(pool.map(sender, range(4)))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        assert f"engine process 1 (pid {victim}) hung" in box.log_text()
        assert not pid_alive(victim)
    balance = account_row(mariadb_database).balance
    assert balance >= 0
    assert charged(mariadb_database) <= Decimal("5.80")  # and reserved sums agree
    assert 0 < granted <= 20 * 60

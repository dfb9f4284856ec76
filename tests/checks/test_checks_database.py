"""Database plugins against a real MariaDB (and the embedded SQLite) with the billing schema."""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from billing.models import Base
from tests.checks.checks_fixtures import run_check, write_config
from vigil.clock import utcnow

pytestmark = pytest.mark.integration  # a throw-away MariaDB pair or server


def billing_db(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    t = Base.metadata.tables
    with engine.begin() as c:
        c.execute(t["customers"].insert().values(id=1, name="acme"))
        c.execute(t["products"].insert().values(id=1, name="p"))
        c.execute(t["accounts"].insert().values(id=1, account_id="1000", customer_id=1,
                                                product_id=1))
    return engine


def add_xdrs(engine: sa.Engine, durations: list[int], minutes_ago: float,
             start: int = 0) -> None:
    t = Base.metadata.tables["account_xdrs"]
    at = utcnow() - dt.timedelta(minutes=minutes_ago)
    with engine.begin() as c:
        c.execute(t.insert(), [{"account_id": 1, "session_key": f"k{start + i}",
                                "duration": d, "created_at": at} for i, d in
                               enumerate(durations)])


@pytest.fixture
def db(mariadb_database: str, tmp_path: Path, state_dir: Path) -> Iterator[tuple[sa.Engine, Path]]:
    engine = billing_db(mariadb_database)
    conf = write_config(tmp_path / "vigil.conf", state_dir,
                        {"Master": {"URL": mariadb_database}})
    yield engine, conf
    engine.dispose()


def test_db_query_ok_and_slow(db: tuple[sa.Engine, Path]) -> None:
    _, conf = db
    r = run_check("db_query", config=conf)
    assert r.rc == 0 and "answered in" in r.line and "'time'=" in r.line, r
    r = run_check("db_query", "-w", "0.000001", config=conf)
    assert r.rc == 1, r


def test_db_query_missing_schema_is_unknown(mariadb_database: str, conf: Path) -> None:
    r = run_check("db_query", "-U", mariadb_database, config=conf)
    assert r.rc == 3 and "doesn't exist" in r.line, r


def test_db_down_is_critical(conf: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_check("db_query", "-U", f"mysql+pymysql://root@127.0.0.1:{port}/x", config=conf)
    assert r.rc == 2 and "Can't connect" in r.line, r


def test_db_that_never_answers_times_out_critical(conf: Path) -> None:
    # accepts TCP connections (the kernel does) but never sends the handshake
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        r = run_check("db_query", "-t", "2", "-U",
                      f"mysql+pymysql://root@127.0.0.1:{port}/x", config=conf)
    assert r.rc == 2, r
    assert "DB_QUERY CRITICAL" in r.line


def test_password_in_url_is_refused(conf: Path) -> None:
    r = run_check("db_query", "-U", "mysql+pymysql://root:secret@127.0.0.1/x", config=conf)
    assert r.rc == 3 and "[Master] Password" in r.line and "secret" not in r.line, r


def test_xdr_rate_asr_acd(db: tuple[sa.Engine, Path]) -> None:
    engine, conf = db
    # 30 calls in the last 10 minutes: 12 connected, mean 90 s; old calls outside the window
    add_xdrs(engine, [60, 120] * 6 + [0] * 18, minutes_ago=5)
    add_xdrs(engine, [0] * 50, minutes_ago=120, start=100)
    r = run_check("xdr_rate", "--window", "10", config=conf)
    assert r.rc == 0 and "3.00 xDRs/min (30 in the last 10 min)" in r.line, r
    assert run_check("xdr_rate", "--window", "10", "-c", "5:", config=conf).rc == 2
    asr = run_check("asr", "--window", "10", config=conf)
    assert asr.rc == 0 and "ASR 40.0% (12 of 30 calls" in asr.line, asr
    assert "'asr'=40%;30:;15:;0;100" in asr.line
    asr = run_check("asr", "--window", "10", "-w", "50:", config=conf)
    assert asr.rc == 1, asr
    # over 3 hours the 50 old failures drag ASR to 15 %: critical below 15 is not hit (15:)
    asr = run_check("asr", "--window", "180", "-c", "16:", config=conf)
    assert asr.rc == 2 and "12 of 80" in asr.line, asr
    acd = run_check("acd", "--window", "10", config=conf)
    assert acd.rc == 0 and "ACD 90s over 12 connected" in acd.line, acd
    assert run_check("acd", "--window", "10", "-w", "100:", config=conf).rc == 1


def test_asr_with_too_few_calls_is_not_judged(db: tuple[sa.Engine, Path]) -> None:
    engine, conf = db
    add_xdrs(engine, [0, 0, 0], minutes_ago=1)
    r = run_check("asr", config=conf)
    assert r.rc == 0 and "not judged" in r.line and "ASR 0.0%" in r.line, r


def test_active_calls(db: tuple[sa.Engine, Path]) -> None:
    engine, conf = db
    t = Base.metadata.tables["active_calls"]
    now = utcnow()
    with engine.begin() as c:
        c.execute(t.insert(), [{"conf_id": f"c{i}", "leg": "originate", "account_id": 1,
                                "updated_at": now - dt.timedelta(minutes=30 if i < 2 else 0)}
                               for i in range(7)])
    r = run_check("active_calls", config=conf)
    assert r.rc == 0 and "7 calls in progress, 2 not updated" in r.line, r
    assert run_check("active_calls", "-w", "5", "-c", "6", config=conf).rc == 2


def test_db_connections(db: tuple[sa.Engine, Path], mariadb: object) -> None:
    _, conf = db
    r = run_check("db_connections", config=conf)
    assert r.rc == 0 and "of 300 connections in use" in r.line, r
    # hold 40 more connections open: over 10 % of 300
    conns = [mariadb.connect() for _ in range(40)]  # type: ignore[attr-defined]
    try:
        r = run_check("db_connections", "-w", "10", config=conf)
        assert r.rc == 1, r
    finally:
        for c in conns:
            c.close()


def test_binlog_disk(db: tuple[sa.Engine, Path], mariadb: object) -> None:
    _, conf = db
    rows = mariadb.execute("SHOW BINARY LOGS")  # type: ignore[attr-defined]
    mb = sum(int(r[1]) for r in rows) / 1e6
    r = run_check("binlog_disk", config=conf)
    assert r.rc == 0 and f"{len(rows)} binary logs" in r.line, r
    r = run_check("binlog_disk", "-w", f"{mb / 2:.6f}", config=conf)
    assert r.rc == 1, r


def test_sqlite_embedded_database(tmp_path: Path, state_dir: Path) -> None:
    engine = billing_db(f"sqlite:///{state_dir / 'billing.db'}")
    add_xdrs(engine, [30] * 4, minutes_ago=1)
    engine.dispose()
    conf = write_config(tmp_path / "v.conf", state_dir, {"Master": {"URL": "sqlite:///billing.db"}})
    r = run_check("xdr_rate", "--window", "2", config=conf)
    assert r.rc == 0 and "(4 in the last 2 min)" in r.line, r
    assert run_check("db_query", config=conf).rc == 0
    r = run_check("db_connections", config=conf)
    assert r.rc == 0 and "not applicable" in r.line and "|" not in r.line, r
    r = run_check("binlog_disk", config=conf)
    assert r.rc == 0 and "not applicable" in r.line, r
    r = run_check("db_connections", "-U", f"sqlite:///{state_dir / 'billing.db'}", config=conf)
    assert r.rc == 3 and "needs MySQL" in r.line, r
    (state_dir / "billing.db").unlink()
    assert run_check("db_query", config=conf).rc == 2



def test_url_parsing() -> None:
    from checks.db import PluginError, parse_url

    u = parse_url("mysql+pymysql://billing@10.0.0.5:3307/porta-billing")
    assert (u.backend, u.host, u.port, u.user, u.database) == \
        ("mysql", "10.0.0.5", 3307, "billing", "porta-billing")
    assert parse_url("mysql://root@localhost/x").port == 3306
    assert parse_url("sqlite:///billing.db").database == "billing.db"
    assert parse_url("sqlite:////var/lib/vigil/billing.db").database == "/var/lib/vigil/billing.db"
    for bad, why in (("postgresql://x/y", "not supported"), ("nonsense", "not a database URL"),
                     ("mysql://u:pw@h/d", "[Master] Password"), ("mysql://h:port/d", "bad port")):
        with pytest.raises(PluginError, match=re.escape(why)):
            parse_url(bad)

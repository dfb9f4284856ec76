"""bench/db_floor.py: the bare durable transaction printed beside the bench's p99."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from db_floor import ROWS, FloorFigures, bare_transactions  # noqa: E402

from vigil.testing.mariadb import MariaDB  # noqa: E402


def test_line_of_known_figures() -> None:
    f = FloorFigures(samples=500, p50_ms=1.14, p99_ms=4.37, max_ms=14.71, rate=766.4)
    assert f.line().endswith("500 at 766/s: p50 1.14 ms, p99 4.37 ms, max 14.7 ms")
    assert FloorFigures(0, 0.0, 0.0, 0.0, 0.0).line() == "no bare transaction measured"


def test_bare_transactions_commit_on_a_real_mariadb(mariadb: MariaDB) -> None:
    db = mariadb.create_database("test_floor")
    try:
        connect = partial(pymysql.connect, host="127.0.0.1", port=mariadb.port, user="root",
                          database=db, autocommit=False)
        f = bare_transactions(connect, rate=200, seconds=0.5)
        assert f.samples == 100
        assert 0 < f.p50_ms <= f.p99_ms <= f.max_ms
        assert 0 < f.rate <= 210
        # every transaction committed: its call row, and its account's counter
        calls = mariadb.execute("SELECT COUNT(*) FROM floor_calls", database=db)[0][0]
        counted = mariadb.execute("SELECT SUM(calls) FROM floor_accounts", database=db)[0][0]
        assert calls == 100 and int(counted) == 100
        # run again: the tables start over
        assert bare_transactions(connect, rate=200, seconds=0.1).samples == 20
        assert mariadb.execute("SELECT COUNT(*) FROM floor_accounts", database=db)[0][0] == ROWS
        assert mariadb.execute("SELECT COUNT(*) FROM floor_calls", database=db)[0][0] == 20
    finally:
        mariadb.execute(f"DROP DATABASE IF EXISTS `{db}`")

"""The batch's prepared text (billing/batch_sql.py): markers match the
parameters, and on a real SQLite each statement does what Core did."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from billing import batch_sql

pytestmark = pytest.mark.unit


def _db() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance REAL, reserved REAL, "
              "calls INTEGER, login_call TEXT, login_until TEXT)")
    c.executemany("INSERT INTO accounts VALUES (?, 10, 1, 2, ?, '2026-01-01')",
                  [(i, f"call-{i}") for i in range(1, 6)])
    c.execute("CREATE TABLE active_calls (id INTEGER PRIMARY KEY)")
    c.executemany("INSERT INTO active_calls VALUES (?)", [(i,) for i in range(1, 6)])
    return c


def test_columns_move_their_own_ids_and_no_other_row():
    sql, params = batch_sql.add_by_id("?", "accounts", {
        "reserved": {3: Decimal("-0.5"), 1: Decimal("-1")}, "calls": {2: -1, 3: -1},
        "balance": {}})
    assert sql.count("?") == len(params)
    c = _db()
    c.execute(sql, [float(p) if isinstance(p, Decimal) else p for p in params])
    rows = c.execute("SELECT id, balance, reserved, calls FROM accounts ORDER BY id").fetchall()
    assert rows == [(1, 10, 0, 2), (2, 10, 1, 1), (3, 10, 0.5, 1), (4, 10, 1, 2),
                    (5, 10, 1, 2)]


def test_logout_frees_only_the_holds_of_these_calls():
    sql, params = batch_sql.logout("?", {1: {"call-1"}, 2: {"other"}, 3: {"call-3", "x"}})
    assert sql.count("?") == len(params)
    c = _db()
    c.execute(sql, params)
    held = c.execute("SELECT id FROM accounts WHERE login_call != '' ORDER BY id").fetchall()
    assert held == [(2,), (4,), (5,)]
    assert c.execute("SELECT login_until FROM accounts WHERE id = 1").fetchone() == (None,)


def test_delete_calls_by_id():
    c = _db()
    c.execute(batch_sql.delete_calls_sql("?", 2), [2, 4])
    assert [r[0] for r in c.execute("SELECT id FROM active_calls")] == [1, 3, 5]
    assert batch_sql.delete_calls_sql("%s", 2).count("%s") == 2

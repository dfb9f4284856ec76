"""The busy-batch grant's prepared text (billing/grant_sql.py): markers and
parameters line up, and the statements keep the reservation contract on a
real database (the money-path and cluster tests run them through the
engine on SQLite and MariaDB)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select

from billing import grant_sql
from billing import models as m
from billing.store import (
    AccountingOp,
    OpKind,
    Reservation,
    ReserveRequest,
    _reservation_row,
    reservation_values,
)


def sqlite_params(params):  # type: ignore[no-untyped-def]
    """As billing.sql_pipeline binds them on SQLite: money as float."""
    return tuple(float(x) if isinstance(x, Decimal) else x for x in params)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
@pytest.mark.parametrize("ph", ["%s", "?"])
def test_markers_match_parameters(n: int, ph: str) -> None:
    funds = {k: Decimal("1.5") * k for k in range(1, n + 1)}
    counts = {k: 1 for k in range(1, n + 1)}
    sql = grant_sql.accounts_sql(ph, n)
    assert sql.count(ph) == len(grant_sql.accounts_params(funds, counts, "debit"))
    for n_funds in (0, n):
        part = {k: funds[k] for k in list(funds)[:n_funds]}
        sql = grant_sql.customers_sql(ph, n, n_funds)
        assert sql.count(ph) == len(grant_sql.customers_params(part, counts))


def test_paramstyles() -> None:
    assert grant_sql.placeholder("format") == "%s"
    assert grant_sql.placeholder("qmark") == "?"
    with pytest.raises(ValueError, match="named"):
        grant_sql.placeholder("named")
    with pytest.raises(ValueError, match="amount and a count"):
        grant_sql.accounts_params({1: Decimal(1)}, {2: 1}, "debit")


def _db() -> Any:
    engine = create_engine("sqlite://")
    m.Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(m.Customer), [dict(id=1, name="C", credit_limit=Decimal("10"),
                                               max_calls=3)])
        # one set of keys for both rows: an executemany takes the first row's
        conn.execute(insert(m.Account), [
            dict(id=1, account_id="a", customer_id=1, product_id=1, billing_model="debit",
                 credit_limit=Decimal(0), balance=Decimal("5")),
            dict(id=2, account_id="b", customer_id=1, product_id=1, billing_model="credit",
                 credit_limit=Decimal("4"), balance=Decimal("1"))])
    return engine


def _grant(engine: Any, acct: dict[int, Decimal], n: dict[int, int]) -> int:
    with engine.begin() as conn:
        return int(conn.exec_driver_sql(
            grant_sql.accounts_sql("?", len(acct)),
            sqlite_params(grant_sql.accounts_params(acct, n, "debit"))).rowcount)


def test_accounts_granted_only_where_funds_left() -> None:
    engine = _db()
    # debit: 5 left, credit: 4 - 1 = 3 left
    assert _grant(engine, {1: Decimal("5"), 2: Decimal("3")}, {1: 2, 2: 1}) == 2
    assert _grant(engine, {1: Decimal("0.01"), 2: Decimal("0.01")}, {1: 1, 2: 1}) == 0
    with engine.connect() as conn:
        rows = conn.execute(select(m.Account.id, m.Account.reserved, m.Account.calls)
                            .order_by(m.Account.id)).all()
    assert [(r[0], Decimal(str(r[1])), r[2]) for r in rows] == [
        (1, Decimal("5"), 2), (2, Decimal("3"), 1)]


def test_customer_limits_calls_and_funds() -> None:
    engine = _db()

    def grant(want: dict[int, Decimal], n: dict[int, int]) -> int:
        with engine.begin() as conn:
            return int(conn.exec_driver_sql(
                grant_sql.customers_sql("?", len(n), len(want)),
                sqlite_params(grant_sql.customers_params(want, n))).rowcount)

    assert grant({1: Decimal("10")}, {1: 2}) == 1
    assert grant({1: Decimal("0.5")}, {1: 1}) == 0  # funds: 10 of 10 held
    assert grant({}, {1: 2}) == 0  # calls: 2 + 2 > 3
    assert grant({}, {1: 1}) == 1  # a call that holds nothing on the customer
    with engine.connect() as conn:
        reserved, calls = conn.execute(select(m.Customer.reserved, m.Customer.calls)).one()
    assert (Decimal(str(reserved)), calls) == (Decimal("10"), 3)


@pytest.mark.parametrize("customer_pk", [None, 7])
def test_reservation_values_are_the_rows_columns_in_order(customer_pk: int | None) -> None:
    # the busy batch's tuples and the careful way's rows must write the
    # same call: every column, cut to the same widths
    now = dt.datetime(2026, 12, 1, 3, 30, 0, 123456)
    req = ReserveRequest(account_pk=3, customer_pk=customer_pk, exclusive_login=False,
                         login_until=None, proposal=None, decide=lambda _f: None,
                         lifetime=90, customer_of=7)
    op = AccountingOp(session_key="k", kind=OpKind.RESERVE, call_key="c" * 300,
                      leg="authorize", account_pk=3, node_ip="10.0.0.1" * 10,
                      cli="1" * 100, cld="2" * 100, session_id="s" * 300, user_name="u" * 300,
                      leg_conf_id="l" * 300, incoming_conf_id="i" * 300, reserve=req)
    granted = Reservation(credit_time=1200, amount=Decimal("5.80"))
    row = _reservation_row(op, granted, now)
    assert reservation_values(op, granted, now) == tuple(row[c] for c in grant_sql.CALL_COLUMNS)
    assert set(row) == set(grant_sql.CALL_COLUMNS)
    # each value cut to its column's width, the expiry after credit time + lifetime
    assert (len(row["conf_id"]), len(row["node_ip"]), len(row["cli"]), len(row["cld"])) == \
        (128, 45, 64, 64)
    assert {len(row[c]) for c in ("session_id", "user_name", "leg_conf_id",
                                  "incoming_conf_id")} == {253}
    assert row["expires_at"] == now + dt.timedelta(seconds=1200 + 90)
    assert (row["reserved"], row["credit_time"], row["customer_id"], row["account_id"]) == \
        (Decimal("5.80"), 1200, customer_pk, 3)
    assert row["started_at"] == row["updated_at"] == now and row["leg"] == "authorize"

"""The active_calls plugin against the embedded SQLite billing database:
calls in progress, and each customer's calls against its limit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from billing.models import Base
from tests.checks.checks_fixtures import run_check, write_config

pytestmark = pytest.mark.integration  # the plugin run as a program


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def setup(tmp_path: Path, state_dir: Path, customers: list[tuple[str, int, int | None]]
          ) -> Path:
    engine = sa.create_engine(f"sqlite:///{state_dir / 'billing.db'}")
    Base.metadata.create_all(engine)
    t = Base.metadata.tables
    now = utcnow()
    with engine.begin() as c:
        c.execute(t["products"].insert().values(id=1, name="p"))
        for i, (name, calls, limit) in enumerate(customers, start=1):
            c.execute(t["customers"].insert().values(id=i, name=name, calls=calls,
                                                     max_calls=limit))
            c.execute(t["accounts"].insert().values(id=i, account_id=f"a{i}", customer_id=i,
                                                    product_id=1, calls=calls))
            for k in range(calls):
                c.execute(t["active_calls"].insert().values(
                    conf_id=f"{name}-{k}", leg="authorize", account_id=i, updated_at=now))
        # a funds lock is not a call
        c.execute(t["active_calls"].insert().values(conf_id="site:b:1", leg="funds_lock",
                                                    account_id=1, updated_at=now))
    engine.dispose()
    return write_config(tmp_path / "v.conf", state_dir, {"Master": {"URL": "sqlite:///billing.db"}})


def test_customers_under_their_limits(tmp_path: Path, state_dir: Path) -> None:
    conf = setup(tmp_path, state_dir, [("acme", 1, 4), ("zeta", 3, None)])
    r = run_check("active_calls", config=conf)
    assert r.rc == 0, r
    assert "4 calls in progress" in r.line and "busiest customer acme 1/4 calls" in r.line
    assert "'worst_limit'=25%" in r.line and "'calls_acme'=1;;;0;4" in r.line


def test_a_customer_near_then_at_its_limit(tmp_path: Path, state_dir: Path) -> None:
    conf = setup(tmp_path, state_dir, [("acme", 4, 5), ("bravo", 1, 10)])
    r = run_check("active_calls", config=conf)
    assert r.rc == 1 and "near or at their call limit: acme 4/5" in r.line, r
    r = run_check("active_calls", "--limit-warning", "90", config=conf)
    assert r.rc == 0, r
    assert run_check("active_calls", "--limit-critical", "80", config=conf).rc == 2


def test_a_limit_lowered_below_the_calls_up_is_critical(tmp_path: Path, state_dir: Path) -> None:
    conf = setup(tmp_path, state_dir, [("acme", 3, 2), ("barred", 0, 0)])
    r = run_check("active_calls", config=conf)
    assert r.rc == 2 and "acme 3/2" in r.line and "'worst_limit'=150%" in r.line, r
    assert "barred" not in r.line.split("|")[0]  # barred with no calls up is fine
    assert run_check("active_calls", "--limit-warning", "0", config=conf).rc == 3

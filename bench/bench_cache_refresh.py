#!/usr/bin/env python3
"""The engine's account cache refresh: CPU per refresh, before and after.

Every engine re-reads the accounts it caches every half second
(``CachedStore.refresh_accounts``, the "account refresh" chore). This
measures one refresh's CPU in the engine process and in mariadbd, for 1,000
and 10,000 cached accounts on one throw-away MariaDB, with two versions of
the code on the same database, one right after the other:

- *before*: the code at ``--before`` (default e596b9a, the last commit with
  the SQLAlchemy Core refresh), taken with ``git archive`` into a temporary
  folder and run from there;
- *after*: this tree.

and two cases: *idle* (nothing changed between refreshes) and *busy* (every
cached account's ``calls`` and ``reserved`` moved before each refresh, as
when every account has traffic: the worst case for comparing rows).
Last, the CPU of one ``SqlStore.find_account`` (an account not cached yet,
run by the look-up workers), before and after.

    .venv/bin/python bench/bench_cache_refresh.py [--accounts 1000,10000] [--refreshes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from decimal import Decimal
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(url: str, accounts: int, refreshes: int, db_pid: int) -> dict[str, object]:
    """Runs with whichever ``billing`` comes first on sys.path."""
    from sqlalchemy import update

    from billing import models as m
    from billing.cached_store import CachedStore
    from billing.db import engine_for_url
    from billing.store import SqlStore

    engine = engine_for_url(url)
    store = CachedStore(SqlStore(engine), account_ttl=3600)
    with engine.connect() as c:
        pks = [r[0] for r in c.execute(m.Account.__table__.select().with_only_columns(
            m.Account.id).order_by(m.Account.id).limit(accounts))]
    for acct in store.db.find_accounts(pks):
        store.accounts.put(acct)
    store.refresh_accounts()  # warm: statements, pool, what is cached
    store.refresh_accounts()
    out: dict[str, object] = {"code": str(Path(sys.modules["billing"].__file__ or "").parent)}
    for case in ("idle", "busy"):
        cpu: list[float] = []
        db_cpu: list[float] = []
        wall: list[float] = []
        for i in range(refreshes):
            if case == "busy":  # every cached account moved, as a reservation does
                with engine.begin() as c:
                    c.execute(update(m.Account).where(m.Account.id.in_(pks)).values(
                        calls=m.Account.calls + (1 if i % 2 == 0 else -1),
                        reserved=m.Account.reserved + Decimal("0.01") * (1 - 2 * (i % 2))))
            d0, c0, w0 = cpu_of(db_pid), time.process_time(), time.perf_counter()
            store.refresh_accounts()
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            db_cpu.append(cpu_of(db_pid) - d0)
        out[case] = {"cpu_ms": 1000 * statistics.median(cpu),
                     "db_cpu_ms": 1000 * statistics.mean(db_cpu),
                     "wall_ms": 1000 * statistics.median(wall)}
    # the look-up of an account not cached yet (the look-up workers' query)
    ids = [f"acc{j:06d}" for j in range(0, accounts, max(1, accounts // 500))]
    store.db.find_account(ids[0])
    c0 = time.process_time()
    for account_id in ids:
        assert store.db.find_account(account_id) is not None
    out["lookup_us"] = 1e6 * (time.process_time() - c0) / len(ids)
    engine.dispose()
    return out


def populate(url: str, n: int) -> None:
    from sqlalchemy import insert

    from billing import models as m
    from billing import schema
    from billing.db import engine_for_url

    engine = engine_for_url(url)
    schema.upgrade(engine)
    with engine.begin() as c:
        cust_key = c.execute(insert(m.Customer).values(name="bench", balance=Decimal(0))
                             ).inserted_primary_key
        prod_key = c.execute(insert(m.Product).values(name="bench")).inserted_primary_key
        assert cust_key is not None and prod_key is not None  # single-row inserts
        cust, prod = cust_key[0], prod_key[0]
        for i in range(0, n, 2000):
            c.execute(insert(m.Account), [dict(
                account_id=f"acc{j:06d}", customer_id=cust, product_id=prod,
                billing_model="debit", balance=Decimal("100.00000"), voip_password="pw",
                preferred_lang="en") for j in range(i, min(n, i + 2000))])
    engine.dispose()


def checkout(rev: str, into: Path) -> Path:
    """The code of ``rev`` (its rooms), to import instead of this tree's."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "billing", "vigil"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_child(code: Path, url: str, n: int, refreshes: int, db_pid: int) -> dict[str, object]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run(
        [sys.executable, __file__, "--child", "--code", str(code), "--url", url,
         "--accounts", str(n), "--refreshes", str(refreshes), "--db-pid", str(db_pid)],
        check=True, capture_output=True, text=True, env=env)
    return json.loads(res.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", default="1000,10000",
                    help="cached accounts, comma-separated (default 1000,10000)")
    ap.add_argument("--refreshes", type=int, default=20, help="refreshes per line (default 20)")
    ap.add_argument("--before", default="e596b9a",
                    help="git revision of the code to compare with (default e596b9a)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--code", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--db-pid", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(x) for x in args.accounts.split(",")]
    if args.child:
        sys.path.insert(0, args.code)
        print(json.dumps(child(args.url, sizes[0], args.refreshes, args.db_pid)))
        return 0

    sys.path.insert(0, str(ROOT))
    from vigil.testing.mariadb import MariaDB

    work = Path(tempfile.mkdtemp(prefix="bench-cache-refresh-"))
    db = MariaDB("bench-refresh", server_id=9)
    db.start()
    try:
        db.create_database("billing")
        url = db.url("billing")
        assert db.proc is not None
        populate(url, max(sizes))
        before = checkout(args.before, work / "before")
        print(f"{'accounts':>8} {'code':<7} {'case':<5} {'engine CPU ms':>13} "
              f"{'mariadbd CPU ms':>15} {'wall ms':>8}   (per refresh, median of "
              f"{args.refreshes})")
        lookups: dict[str, float] = {}
        for n in sizes:
            for name, code in (("before", before), ("after", ROOT)):
                got = run_child(code, url, n, args.refreshes, db.proc.pid)
                for case in ("idle", "busy"):
                    f = got[case]
                    assert isinstance(f, dict)
                    print(f"{n:>8} {name:<7} {case:<5} {f['cpu_ms']:>13.1f} "
                          f"{f['db_cpu_ms']:>15.1f} {f['wall_ms']:>8.1f}", flush=True)
                lookups[name] = float(got["lookup_us"])  # type: ignore[arg-type]
        print(f"find_account (an account not cached yet), engine CPU per look-up: "
              f"before {lookups['before']:.0f} us, after {lookups['after']:.0f} us")
    finally:
        db.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Authorizations of one wholesale credit account: with no call open, and
with thousands open.

Issue 13: a trunk account with 4,600 calls open used to authorize at 0.47
of its rate with none, because each authorization summed every open
reservation of the account. The reservation contract keeps a running sum
(``accounts.reserved``), so the work per authorization should not grow with
the calls open. Same engine, same durable MariaDB, same load generator as
bench/bench_radius.py; before each line the open calls are set (rows in
``active_calls`` and their running sums), so each line starts from its own
count.

    .venv/bin/python bench/bench_open_calls.py [--requests 10000] [--open 0,4000,20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_radius import authz_file, durable_mariadb, measure, start_vigil, tools_here, workdir  # noqa: E402
from sqlalchemy import delete, insert, select, update  # noqa: E402

from billing import models as m  # noqa: E402
from billing.db import engine_for_url  # noqa: E402
from vigil.clock import utcnow  # noqa: E402

ACCOUNT = "acc0000"


def set_open_calls(url: str, n: int) -> None:
    """Exactly ``n`` calls open on the account, each holding 0.01, and the
    running sums that go with them."""
    e = engine_for_url(url)
    now = utcnow()
    with e.begin() as c:
        pk, customer = c.execute(select(m.Account.id, m.Account.customer_id).where(
            m.Account.account_id == ACCOUNT)).one()
        c.execute(delete(m.ActiveCall))
        for start in range(0, n, 5000):
            c.execute(insert(m.ActiveCall), [dict(
                conf_id=f"open-{i}", leg="authorize", account_id=pk, reserved=Decimal("0.01"),
                started_at=now, updated_at=now, expires_at=now + dt.timedelta(days=1))
                for i in range(start, min(n, start + 5000))])
        c.execute(update(m.Account).values(reserved=0, calls=0))
        c.execute(update(m.Account).where(m.Account.id == pk).values(
            reserved=Decimal("0.01") * n, calls=n))
        c.execute(update(m.Customer).where(m.Customer.id == customer).values(calls=n))
    e.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000, help="authorizations per line")
    ap.add_argument("--open", default="0,4000,20000",
                    help="calls open before each line, comma-separated (default 0,4000,20000)")
    ap.add_argument("--senders", type=int, default=4, help="sockets sending at once")
    ap.add_argument("--sender", choices=("python", "radclient"), default="python",
                    help="the load generator, as in bench/bench_radius.py")
    args = ap.parse_args()
    if not tools_here(args.sender):
        return 2
    work, secret = workdir("open")
    counts = [int(x) for x in args.open.split(",")]
    db = durable_mariadb("bench-open")
    db.start()
    rows = []
    try:
        box = start_vigil(db, work, "open", 1)
        url = db.url("billing_open")
        try:
            assert box.proc is not None and db.proc is not None
            # warm-up (the account read once, the statements' texts built),
            # so that the first line measures the same engine as the others
            measure(args.sender, box.auth_port, "auth",
                    [authz_file(work / "warm.txt", 1000, "warm", ACCOUNT)], secret, box.proc.pid,
                    db.proc.pid, "1", args.senders, 128)
            for k, n in enumerate(counts):
                set_open_calls(url, n)
                time.sleep(2.5)  # the engine's cache sees the new sums (holds: every 2 s)
                files = [authz_file(work / f"r{k}-{j}.txt", 1000, f"o{k}-{j}", ACCOUNT)
                         for j in range(max(1, args.requests // 1000))]
                r = measure(args.sender, box.auth_port, "auth", files, secret,
                            box.proc.pid, db.proc.pid, "1", args.senders, 128)
                rows.append((n, r))
                print(f"{n:>7} calls open: {r['rps']:8.0f} authorizations/s, "
                      f"{r['failed']:.0f} failed, CPU s per 1k: engine {r['server_cpu']:.3f}, "
                      f"mariadbd {r['db_cpu']:.3f}", flush=True)
        finally:
            box.stop()
    finally:
        db.destroy()
    base = rows[0][1]["rps"] if rows and rows[0][0] == 0 else None
    print(f"\nOne credit account, {args.requests} authorizations per line, {args.senders} "
          f"sockets of the {args.sender} sender (128 in flight) on CPU 1, the engine on CPU 0, "
          "durable MariaDB")
    for n, r in rows:
        ratio = f"{r['rps'] / base:.2f}x the rate with none" if base else ""
        print(f"  {n:>7} open: {r['rps']:8.0f}/s  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
